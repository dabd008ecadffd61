"""What the API takes and gives (CONTRACT.md sections 5 and 7).

Bodies forbid unknown fields: there is no field that could carry a file, and a client that
tries (``"content"``, ``"image"``, a base64 dump) gets 422 rather than silent acceptance. Sizes
are bounded here and the domain checks the values themselves (hex digests, time zones, blank
text), answering 422 with the field's name.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cpu_forensics.domain.analysis import LabAnalysis
from cpu_forensics.domain.custody import CustodyEvent, CustodyTransfer
from cpu_forensics.domain.evidence import EvidenceItem
from cpu_shared.contracts.codes import AnalysisType, CustodyKind, EvidenceType

SealCondition = Literal["intact", "damaged", "broken", "missing"]
Id = Field(min_length=1, max_length=128)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=10_000)


# --- requests ---------------------------------------------------------------------------------


class HashesIn(Body):
    sha256: str = Field(max_length=64)
    md5: str | None = Field(default=None, max_length=32)
    sha1: str | None = Field(default=None, max_length=40)


class EvidenceCreate(Body):
    """``POST /api/v1/evidence``: hashes and locations of an exhibit, never its content."""

    case_id: str = Id
    type: EvidenceType
    description: str = Field(max_length=2000)
    collected_by: str | None = Field(
        default=None,
        max_length=200,
        description="Who collected it; the registering user if omitted.",
    )
    collected_at: AwareDatetime
    collected_location: str = Field(max_length=200)
    seal_number: str = Field(max_length=64)
    seal_condition: SealCondition = "intact"
    storage_location: str = Field(max_length=200)
    parent_id: str | None = Field(default=None, max_length=128)
    hashes: HashesIn | None = None
    acquisition_tool: str | None = Field(default=None, max_length=200)


class TransferCreate(Body):
    """``POST /api/v1/evidence/{id}/transfers``: the holder hands over; ``to_user`` accepts."""

    kind: CustodyKind
    to_user: str = Id
    purpose: str = Field(max_length=500)
    location: str = Field(max_length=200)
    at: AwareDatetime | None = Field(default=None, description="Handover time; now if omitted.")
    seal_number: str | None = Field(default=None, max_length=64)
    seal_condition: SealCondition | None = None
    seal_change_reason: str | None = Field(default=None, max_length=500)


class TransferAccept(Body):
    at: AwareDatetime | None = None
    seal_condition: SealCondition | None = Field(
        default=None, description="The seal as the receiver finds it (as handed over if omitted)."
    )
    receipt_note: str | None = Field(default=None, max_length=500)


class TransferCancel(Body):
    reason: str | None = Field(default=None, max_length=500)


class AnalysisCreate(Body):
    type: AnalysisType
    purpose: str = Field(max_length=500)


class AnalysisExamination(Body):
    """The analyst's work: ``start`` the examination (holding the item), then report the
    ``result`` (method, a result code, and findings that stay in this service)."""

    step: Literal["start", "result"]
    method: str | None = Field(default=None, max_length=500)
    result_code: str | None = Field(default=None, max_length=50)
    summary: str | None = Field(default=None, max_length=10_000)


class AnalysisDecision(Body):
    """A lab lead's decision: ``assign`` an analyst, ``sign_off`` a result (a second
    person's review), ``send_back`` a result with a note, or ``cancel`` with a reason."""

    decision: Literal["assign", "sign_off", "send_back", "cancel"]
    analyst: str | None = Field(default=None, min_length=1, max_length=128)
    note: str | None = Field(default=None, max_length=2000)


# --- responses --------------------------------------------------------------------------------


class HashesPublic(BaseModel):
    sha256: str
    md5: str | None
    sha1: str | None


class TransferPublic(BaseModel):
    id: str
    item_id: str
    kind: str
    from_user: str
    to_user: str
    purpose: str
    location: str
    at: datetime
    recorded_at: datetime
    seal_number: str
    seal_condition: str
    seal_change_reason: str | None
    status: str
    closed_by: str | None
    closed_at: datetime | None
    close_reason: str | None

    @classmethod
    def of(cls, t: CustodyTransfer) -> TransferPublic:
        return cls(
            id=t.transfer_id,
            item_id=t.item_id,
            kind=t.kind.value,
            from_user=t.from_user,
            to_user=t.to_user,
            purpose=t.purpose,
            location=t.location,
            at=t.at,
            recorded_at=t.recorded_at,
            seal_number=t.seal_number,
            seal_condition=t.seal_condition.value,
            seal_change_reason=t.seal_change_reason,
            status=t.status.value,
            closed_by=t.closed_by,
            closed_at=t.closed_at,
            close_reason=t.close_reason,
        )


class ItemPublic(BaseModel):
    id: str
    case_id: str
    type: str
    description: str
    collected_by: str
    collected_at: datetime
    collected_location: str
    seal_number: str
    seal_condition: str
    storage_location: str
    parent_id: str | None
    hashes: HashesPublic | None
    acquisition_tool: str | None
    registered_by: str
    registered_at: datetime
    custodian: str
    status: str
    last_sequence: int
    last_movement_at: datetime
    pending_transfer: TransferPublic | None

    @classmethod
    def of(cls, item: EvidenceItem) -> ItemPublic:
        h = item.hashes
        return cls(
            id=item.id,
            case_id=item.case_id,
            type=item.type.value,
            description=item.description,
            collected_by=item.collected_by,
            collected_at=item.collected_at,
            collected_location=item.collected_location,
            seal_number=item.seal_number,
            seal_condition=item.seal_condition.value,
            storage_location=item.storage_location,
            parent_id=item.parent_id,
            hashes=HashesPublic(sha256=h.sha256, md5=h.md5, sha1=h.sha1) if h else None,
            acquisition_tool=item.acquisition_tool,
            registered_by=item.registered_by,
            registered_at=item.registered_at,
            custodian=item.custodian,
            status=item.status.value,
            last_sequence=item.last_sequence,
            last_movement_at=item.last_movement_at or item.registered_at,
            pending_transfer=(
                TransferPublic.of(item.pending_transfer) if item.pending_transfer else None
            ),
        )


class CustodyEventPublic(BaseModel):
    event_id: str
    sequence: int
    kind: str
    from_user: str
    to_user: str
    purpose: str
    location: str
    at: datetime
    requested_at: datetime | None
    recorded_at: datetime
    transfer_id: str | None
    seal_number: str
    seal_condition: str
    seal_change_reason: str | None
    receipt_note: str | None
    ledger_index: int

    @classmethod
    def of(cls, e: CustodyEvent, ledger_index: int) -> CustodyEventPublic:
        return cls(
            event_id=e.event_id,
            sequence=e.sequence,
            kind=e.kind.value,
            from_user=e.from_user,
            to_user=e.to_user,
            purpose=e.purpose,
            location=e.location,
            at=e.at,
            requested_at=e.requested_at,
            recorded_at=e.recorded_at,
            transfer_id=e.transfer_id,
            seal_number=e.seal_number,
            seal_condition=e.seal_condition.value,
            seal_change_reason=e.seal_change_reason,
            receipt_note=e.receipt_note,
            ledger_index=ledger_index,
        )


class RegisteredPublic(ItemPublic):
    registration: CustodyEventPublic


class AcceptedPublic(BaseModel):
    transfer: TransferPublic
    event: CustodyEventPublic
    item: ItemPublic


class ChainBreakPublic(BaseModel):
    sequence: int
    event_id: str
    rule: str
    message: str


class CustodyPublic(BaseModel):
    item_id: str
    custodian: str
    status: str
    pending_transfer: TransferPublic | None
    events: list[CustodyEventPublic]
    transfers: list[TransferPublic]
    chain_breaks: list[ChainBreakPublic]


class PendingPublic(BaseModel):
    transfers: list[TransferPublic] = Field(description="Handovers awaiting your acceptance")
    flagged: list[TransferPublic] = Field(
        description="Handovers nobody accepted in time (custody.flagged only), oldest first"
    )


class AnalysisResultPublic(BaseModel):
    method: str
    result_code: str
    recorded_by: str
    recorded_at: datetime
    summary: str | None


class AnalysisPublic(BaseModel):
    id: str
    item_id: str
    type: str
    status: str
    purpose: str
    requested_by: str
    requested_at: datetime
    analyst: str | None
    assigned_by: str | None
    assigned_at: datetime | None
    started_at: datetime | None
    result: AnalysisResultPublic | None
    superseded_results: list[AnalysisResultPublic]
    signed_off_by: str | None
    signed_off_at: datetime | None
    review_note: str | None
    cancelled_by: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None

    @classmethod
    def of(cls, a: LabAnalysis) -> AnalysisPublic:
        def result(r):  # type: ignore[no-untyped-def]
            return AnalysisResultPublic(
                method=r.method,
                result_code=r.result_code,
                recorded_by=r.recorded_by,
                recorded_at=r.recorded_at,
                summary=r.summary,
            )

        return cls(
            id=a.id,
            item_id=a.item_id,
            type=a.type.value,
            status=a.status.value,
            purpose=a.purpose,
            requested_by=a.requested_by,
            requested_at=a.requested_at,
            analyst=a.analyst,
            assigned_by=a.assigned_by,
            assigned_at=a.assigned_at,
            started_at=a.started_at,
            result=result(a.result) if a.result else None,
            superseded_results=[result(r) for r in a.superseded_results],
            signed_off_by=a.signed_off_by,
            signed_off_at=a.signed_off_at,
            review_note=a.review_note,
            cancelled_by=a.cancelled_by,
            cancelled_at=a.cancelled_at,
            cancel_reason=a.cancel_reason,
        )


class AnalysesPublic(BaseModel):
    analyses: list[AnalysisPublic]


# --- ledger (CONTRACT.md section 7) ---------------------------------------------------------


def b64(data: bytes) -> str:
    """Standard, padded base64 (CONTRACT.md section 7)."""
    return base64.b64encode(data).decode("ascii")


class EntryPublic(BaseModel):
    index: int
    event_id: str
    item_id: str
    leaf: str = Field(description="base64 of the leaf bytes (RFC 8785 JSON of the event)")


class EntriesPublic(BaseModel):
    entries: list[EntryPublic]


class TreeHeadPublic(BaseModel):
    tree_size: int
    root_hash: str
    timestamp: datetime
    checkpoint: str


class PublicKeyPublic(BaseModel):
    public_key: str = Field(description="The verifier key: <name>+<key id>+<base64 key>")
    verifier_key: str = Field(description="The same verifier key (signed-note name for it)")
    origin: str
    key_id: str
    algorithm: Literal["ed25519"] = "ed25519"


class InclusionProofPublic(BaseModel):
    index: int
    tree_size: int
    path: list[str]


class ConsistencyProofPublic(BaseModel):
    first: int
    second: int
    path: list[str]


class LedgerProblemPublic(BaseModel):
    code: str
    message: str
    index: int | None = None
    index_end: int | None = None
    event_id: str | None = None
    tree_head_size: int | None = None


class VerificationPublic(BaseModel):
    ok: bool
    tree_size: int
    root_hash: str
    tree_heads_checked: int = Field(description="Heads whose root was checked against the tree")
    tree_heads_verified: int = Field(description="Heads whose signature was verified too")
    signatures: Literal["all", "newest"]
    first_bad_index: int | None
    first_bad_event_id: str | None
    first_bad_exact: bool
    problems: list[LedgerProblemPublic]
    summary: str
