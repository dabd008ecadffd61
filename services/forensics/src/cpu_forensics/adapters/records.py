"""Rows to domain objects and back, with every free-text field encrypted on the way in.

One place converts, so the API, the pages, the report and ``cpu ledger verify`` all rebuild a
custody event from its stored record the same way: what the verifier hashes is exactly what
the service would show.

Every value of an ``*_enc`` column is an AES-GCM token bound to ``table.column#row id``
(:func:`cpu_shared.security.crypto.field_context`): a token copied into another row or column
does not decrypt, so it cannot make one item's record say what another's says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cpu_forensics.adapters.tables import ANALYSES, EVENTS, ITEMS, LEAVES, TRANSFERS
from cpu_forensics.domain.analysis import AnalysisResult, LabAnalysis
from cpu_forensics.domain.custody import (
    CustodyEvent,
    CustodyKind,
    CustodyTransfer,
    RegisteredEvidence,
    TransferStatus,
)
from cpu_forensics.domain.evidence import (
    DigitalHashes,
    EvidenceItem,
    EvidenceStatus,
    EvidenceType,
    SealCondition,
)
from cpu_shared.security.crypto import FieldCipher, field_context

Row = Mapping[Any, Any]


def utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else utc(moment)


class Protection:
    """Encrypts and decrypts one slot (table, column, row id) at a time."""

    def __init__(self, cipher: FieldCipher) -> None:
        self.cipher = cipher

    def seal(self, table: str, column: str, row_id: str, value: str) -> str:
        return self.cipher.encrypt(value, context=field_context(table, column, row_id))

    def seal_opt(self, table: str, column: str, row_id: str, value: str | None) -> str | None:
        return None if value is None else self.seal(table, column, row_id, value)

    def open(self, table: str, column: str, row_id: str, token: str) -> str:
        return self.cipher.decrypt(token, context=field_context(table, column, row_id))

    def open_opt(self, table: str, column: str, row_id: str, token: str | None) -> str | None:
        return None if token is None else self.open(table, column, row_id, token)

    def seal_leaf(self, ledger_index: int, leaf: bytes) -> str:
        # Leaves are canonical JSON, hence UTF-8 text; bound to their position in the log.
        return self.seal(LEAVES, "leaf_enc", str(ledger_index), leaf.decode("utf-8"))

    def open_leaf(self, ledger_index: int, token: str) -> bytes:
        return self.open(LEAVES, "leaf_enc", str(ledger_index), token).encode("utf-8")


# --- evidence items ---------------------------------------------------------------------------


def item_values(item: EvidenceItem, p: Protection, *, now: datetime) -> dict[str, Any]:
    """Every column of ``item``'s row (identity and custody state)."""
    hashes = item.hashes
    return {
        "id": item.id,
        "case_id": item.case_id,
        "type": item.type.value,
        "parent_id": item.parent_id,
        "description_enc": p.seal(ITEMS, "description_enc", item.id, item.description),
        "collected_by_enc": p.seal(ITEMS, "collected_by_enc", item.id, item.collected_by),
        "collected_at": item.collected_at,
        "collected_location_enc": p.seal(
            ITEMS, "collected_location_enc", item.id, item.collected_location
        ),
        "sha256": hashes.sha256 if hashes else None,
        "md5": hashes.md5 if hashes else None,
        "sha1": hashes.sha1 if hashes else None,
        "acquisition_tool": item.acquisition_tool,
        "registered_by": item.registered_by,
        "registered_at": item.registered_at,
        **item_state_values(item, p),
        "event_seq": 0,
        "updated_at": now,
    }


def item_state_values(item: EvidenceItem, p: Protection) -> dict[str, Any]:
    """The columns a custody step changes."""
    return {
        "custodian": item.custodian,
        "status": item.status.value,
        "seal_number": item.seal_number,
        "seal_condition": item.seal_condition.value,
        "storage_location_enc": p.seal(
            ITEMS, "storage_location_enc", item.id, item.storage_location
        ),
        "last_sequence": item.last_sequence,
        "last_movement_at": item.last_movement_at,
        "away_kind": item.away_kind.value if item.away_kind is not None else None,
        "version": item.version,
    }


def registered_evidence(row: Row, p: Protection) -> RegisteredEvidence:
    """What the item's registration event commits to, from the item's row."""
    item_id = row["id"]
    return RegisteredEvidence(
        type=EvidenceType(row["type"]),
        description=p.open(ITEMS, "description_enc", item_id, row["description_enc"]),
        collected_by=p.open(ITEMS, "collected_by_enc", item_id, row["collected_by_enc"]),
        collected_at=utc(row["collected_at"]),
        collected_location=p.open(
            ITEMS, "collected_location_enc", item_id, row["collected_location_enc"]
        ),
        parent_id=row["parent_id"],
        hashes=hashes_of(row),
        acquisition_tool=row["acquisition_tool"],
    )


def hashes_of(row: Row) -> DigitalHashes | None:
    if row["sha256"] is None:
        return None
    return DigitalHashes(sha256=row["sha256"], md5=row["md5"], sha1=row["sha1"])


def item_from_row(row: Row, p: Protection, pending: CustodyTransfer | None) -> EvidenceItem:
    """The aggregate, validated by its own constructor (a bad row fails loudly here)."""
    evidence = registered_evidence(row, p)
    item = EvidenceItem(
        id=row["id"],
        case_id=row["case_id"],
        type=evidence.type,
        description=evidence.description,
        collected_by=evidence.collected_by,
        collected_at=evidence.collected_at,
        collected_location=evidence.collected_location,
        seal_number=row["seal_number"],
        seal_condition=row["seal_condition"],
        storage_location=p.open(
            ITEMS, "storage_location_enc", row["id"], row["storage_location_enc"]
        ),
        registered_by=row["registered_by"],
        registered_at=utc(row["registered_at"]),
        custodian=row["custodian"],
        parent_id=row["parent_id"],
        hashes=evidence.hashes,
        acquisition_tool=row["acquisition_tool"],
        status=EvidenceStatus(row["status"]),
        version=row["version"],
        last_sequence=row["last_sequence"],
        last_movement_at=utc(row["last_movement_at"]),
        away_kind=CustodyKind(row["away_kind"]) if row["away_kind"] else None,
        pending_transfer=pending,
    )
    return item


# --- transfers ----------------------------------------------------------------------------


def transfer_values(t: CustodyTransfer, p: Protection) -> dict[str, Any]:
    return {
        "id": t.transfer_id,
        "item_id": t.item_id,
        "kind": t.kind.value,
        "from_user": t.from_user,
        "to_user": t.to_user,
        "purpose_enc": p.seal(TRANSFERS, "purpose_enc", t.transfer_id, t.purpose),
        "location_enc": p.seal(TRANSFERS, "location_enc", t.transfer_id, t.location),
        "at": t.at,
        "recorded_at": t.recorded_at,
        "seal_number": t.seal_number,
        "seal_condition": t.seal_condition.value,
        "seal_change_reason_enc": p.seal_opt(
            TRANSFERS, "seal_change_reason_enc", t.transfer_id, t.seal_change_reason
        ),
        **transfer_close_values(t, p),
    }


def transfer_close_values(t: CustodyTransfer, p: Protection) -> dict[str, Any]:
    return {
        "status": t.status.value,
        "closed_by": t.closed_by,
        "closed_at": t.closed_at,
        "close_reason_enc": p.seal_opt(
            TRANSFERS, "close_reason_enc", t.transfer_id, t.close_reason
        ),
    }


def transfer_from_row(row: Row, p: Protection) -> CustodyTransfer:
    tid = row["id"]
    return CustodyTransfer(
        transfer_id=tid,
        item_id=row["item_id"],
        kind=CustodyKind(row["kind"]),
        from_user=row["from_user"],
        to_user=row["to_user"],
        purpose=p.open(TRANSFERS, "purpose_enc", tid, row["purpose_enc"]),
        location=p.open(TRANSFERS, "location_enc", tid, row["location_enc"]),
        at=utc(row["at"]),
        recorded_at=utc(row["recorded_at"]),
        seal_number=row["seal_number"],
        seal_condition=SealCondition(row["seal_condition"]),
        seal_change_reason=p.open_opt(
            TRANSFERS, "seal_change_reason_enc", tid, row["seal_change_reason_enc"]
        ),
        status=TransferStatus(row["status"]),
        closed_by=row["closed_by"],
        closed_at=utc_or_none(row["closed_at"]),
        close_reason=p.open_opt(TRANSFERS, "close_reason_enc", tid, row["close_reason_enc"]),
    )


# --- custody events -------------------------------------------------------------------------


def event_values(e: CustodyEvent, ledger_index: int, p: Protection) -> dict[str, Any]:
    """The record of one custody event. The registration's giver (the collector, a name) is
    not repeated here: it is on the item, encrypted."""
    registered = e.kind is CustodyKind.REGISTERED
    return {
        "id": e.event_id,
        "item_id": e.item_id,
        "case_id": e.case_id,
        "sequence": e.sequence,
        "kind": e.kind.value,
        "from_user": None if registered else e.from_user,
        "to_user": e.to_user,
        "purpose_enc": p.seal(EVENTS, "purpose_enc", e.event_id, e.purpose),
        "location_enc": p.seal(EVENTS, "location_enc", e.event_id, e.location),
        "at": e.at,
        "requested_at": e.requested_at,
        "recorded_at": e.recorded_at,
        "transfer_id": e.transfer_id,
        "seal_number": e.seal_number,
        "seal_condition": e.seal_condition.value,
        "seal_change_reason_enc": p.seal_opt(
            EVENTS, "seal_change_reason_enc", e.event_id, e.seal_change_reason
        ),
        "receipt_note_enc": p.seal_opt(EVENTS, "receipt_note_enc", e.event_id, e.receipt_note),
        "ledger_index": ledger_index,
    }


def event_from_row(row: Row, p: Protection, evidence: RegisteredEvidence | None) -> CustodyEvent:
    """Rebuild the custody event a record says happened (``evidence``: for a registration,
    from the item's row; raises on an undecryptable or invalid record)."""
    eid = row["id"]
    kind = CustodyKind(row["kind"])
    registered = kind is CustodyKind.REGISTERED
    if registered and evidence is None:
        raise ValueError(f"registration {eid} needs its item's identity")
    return CustodyEvent(
        event_id=eid,
        item_id=row["item_id"],
        case_id=row["case_id"],
        sequence=row["sequence"],
        kind=kind,
        from_user=evidence.collected_by if registered and evidence else row["from_user"],
        to_user=row["to_user"],
        purpose=p.open(EVENTS, "purpose_enc", eid, row["purpose_enc"]),
        location=p.open(EVENTS, "location_enc", eid, row["location_enc"]),
        at=utc(row["at"]),
        seal_number=row["seal_number"],
        seal_condition=row["seal_condition"],
        recorded_at=utc(row["recorded_at"]),
        transfer_id=row["transfer_id"],
        requested_at=utc_or_none(row["requested_at"]),
        seal_change_reason=p.open_opt(
            EVENTS, "seal_change_reason_enc", eid, row["seal_change_reason_enc"]
        ),
        receipt_note=p.open_opt(EVENTS, "receipt_note_enc", eid, row["receipt_note_enc"]),
        evidence=evidence if registered else None,
    )


# --- analyses -------------------------------------------------------------------------------


def _result_doc(result: AnalysisResult) -> dict[str, Any]:
    return {
        "method": result.method,
        "result_code": result.result_code,
        "recorded_by": result.recorded_by,
        "recorded_at": result.recorded_at.isoformat(),
        "summary": result.summary,
    }


def _result_of(doc: Mapping[str, Any]) -> AnalysisResult:
    return AnalysisResult(
        method=doc["method"],
        result_code=doc["result_code"],
        recorded_by=doc["recorded_by"],
        recorded_at=utc(datetime.fromisoformat(doc["recorded_at"])),
        summary=doc["summary"],
    )


def analysis_values(a: LabAnalysis, p: Protection) -> dict[str, Any]:
    cipher, aid = p.cipher, a.id
    result_enc = (
        cipher.encrypt_json(
            _result_doc(a.result), context=field_context(ANALYSES, "result_enc", aid)
        )
        if a.result is not None
        else None
    )
    superseded_enc = (
        cipher.encrypt_json(
            [_result_doc(r) for r in a.superseded_results],
            context=field_context(ANALYSES, "superseded_enc", aid),
        )
        if a.superseded_results
        else None
    )
    return {
        "id": aid,
        "item_id": a.item_id,
        "case_id": a.case_id,
        "type": a.type.value,
        "requested_by": a.requested_by,
        "requested_at": a.requested_at,
        "purpose_enc": p.seal(ANALYSES, "purpose_enc", aid, a.purpose),
        "status": a.status.value,
        "analyst": a.analyst,
        "assigned_by": a.assigned_by,
        "assigned_at": a.assigned_at,
        "started_at": a.started_at,
        "result_code": a.result.result_code if a.result is not None else None,
        "result_enc": result_enc,
        "superseded_enc": superseded_enc,
        "signed_off_by": a.signed_off_by,
        "signed_off_at": a.signed_off_at,
        "review_note_enc": p.seal_opt(ANALYSES, "review_note_enc", aid, a.review_note),
        "cancelled_by": a.cancelled_by,
        "cancelled_at": a.cancelled_at,
        "cancel_reason_enc": p.seal_opt(ANALYSES, "cancel_reason_enc", aid, a.cancel_reason),
        "last_step_at": a.last_step_at,
        "version": a.version,
    }


def analysis_from_row(row: Row, p: Protection) -> LabAnalysis:
    cipher, aid = p.cipher, row["id"]
    result = (
        _result_of(
            cipher.decrypt_json(
                row["result_enc"], context=field_context(ANALYSES, "result_enc", aid)
            )
        )
        if row["result_enc"] is not None
        else None
    )
    superseded = (
        tuple(
            _result_of(doc)
            for doc in cipher.decrypt_json(
                row["superseded_enc"], context=field_context(ANALYSES, "superseded_enc", aid)
            )
        )
        if row["superseded_enc"] is not None
        else ()
    )
    return LabAnalysis(
        id=aid,
        item_id=row["item_id"],
        case_id=row["case_id"],
        type=row["type"],
        requested_by=row["requested_by"],
        requested_at=utc(row["requested_at"]),
        purpose=p.open(ANALYSES, "purpose_enc", aid, row["purpose_enc"]),
        status=row["status"],
        analyst=row["analyst"],
        assigned_by=row["assigned_by"],
        assigned_at=utc_or_none(row["assigned_at"]),
        started_at=utc_or_none(row["started_at"]),
        result=result,
        superseded_results=superseded,
        signed_off_by=row["signed_off_by"],
        signed_off_at=utc_or_none(row["signed_off_at"]),
        review_note=p.open_opt(ANALYSES, "review_note_enc", aid, row["review_note_enc"]),
        cancelled_by=row["cancelled_by"],
        cancelled_at=utc_or_none(row["cancelled_at"]),
        cancel_reason=p.open_opt(ANALYSES, "cancel_reason_enc", aid, row["cancel_reason_enc"]),
        last_step_at=utc(row["last_step_at"]),
        version=row["version"],
    )
