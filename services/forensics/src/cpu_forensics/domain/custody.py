"""The chain of custody: registration, two-step handovers, and the rules that keep it whole.

Every change of hands is two steps. The holder *requests* a movement
(:func:`request_transfer`): the item is flagged ``transfer_pending`` and nothing else can
happen to it. Custody passes only when the named receiver *accepts*
(:func:`accept_transfer`), which yields the :class:`CustodyEvent` that goes into the ledger.
The giver may withdraw and the receiver may refuse (:func:`cancel_transfer`); an open request
older than a threshold is listed by :func:`flag_stale_transfers`.

Rules, each refused with :class:`CustodyRuleBroken` and its :class:`CustodyRule` name:

* ``not_current_custodian``: only the holder hands an item over (or derives an item from it).
* ``custody_gap``: the receiver of one step is the giver of the next, and sequences have no
  holes. By construction a live request cannot break it (the giver is checked to be the holder);
  it guards acceptance of a stale request and the replay of stored events
  (:func:`find_chain_breaks`), where a deleted or edited row shows up as a gap.
* ``item_disposed``: nothing moves after ``released`` or ``destroyed``.
* ``seal_change_needs_reason``: a new seal number, or a seal condition that differs from the
  last one, needs the giver's reason; a receiver who finds the seal in another condition than
  the giver declared must say so in a receipt note.
* ``transfer_already_pending``, ``transfer_not_pending``, ``not_the_receiver``,
  ``not_party_to_transfer``: the two-step handshake.
* ``time_goes_backwards``: a step cannot predate the previous one (nor acceptance its
  request); ``time_in_future``: a step cannot be dated more than ``CLOCK_SKEW`` after the
  server recorded it. Steps may be entered late (backdated), never ahead.
* ``self_transfer``: giver and receiver must differ, so every handover has two witnesses. That
  includes ``released`` and ``destroyed``: their receiver is the officer who carries out the
  release or destruction (the owner, who has no account, is named in ``purpose``).
* ``return_without_departure``: ``returned`` follows a ``sent_to_lab`` or ``court_exhibit``.
* ``derived_from_other_case``, ``derivation_not_possible``: a derived item stays in its
  parent's case, and digital items derive only from digital ones (and physical from physical).
* ``event_of_another_item``: a stored chain replayed by :func:`find_chain_breaks` holds an
  event of another item.

Registration (:func:`register_evidence`) is the chain's first event, kind ``registered``,
from the collector to the registering user, who becomes the first custodian. It carries what
the item *is* (:class:`RegisteredEvidence`: type, description, hashes, ...) so that the ledger
commits to the item's identity as well as its movements: editing a stored SHA-256 later is as
visible as editing a handover.

Ids and instants are passed in (``event_id``, ``recorded_at``), never made here, so the domain
stays deterministic and free of I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from cpu_forensics.domain.evidence import (
    DIGITAL_TYPES,
    DigitalHashes,
    EvidenceItem,
    EvidenceStatus,
    EvidenceType,
    SealCondition,
    parse_evidence_type,
    parse_seal_condition,
)
from cpu_forensics.domain.rules import CustodyRule, CustodyRuleBroken, InvalidValue
from cpu_forensics.domain.values import (
    CLOCK_SKEW,
    identifier,
    not_in_future,
    optional_text,
    text,
    utc,
)


class CustodyKind(StrEnum):
    REGISTERED = "registered"  # the chain's first event only; never requested
    CHECK_IN = "check_in"
    TRANSFER = "transfer"
    SENT_TO_LAB = "sent_to_lab"
    RETURNED = "returned"
    COURT_EXHIBIT = "court_exhibit"
    RELEASED = "released"
    DESTROYED = "destroyed"


MOVEMENT_KINDS = frozenset(CustodyKind) - {CustodyKind.REGISTERED}
DISPOSAL_KINDS = frozenset({CustodyKind.RELEASED, CustodyKind.DESTROYED})
AWAY_KINDS = frozenset({CustodyKind.SENT_TO_LAB, CustodyKind.COURT_EXHIBIT})

REGISTRATION_PURPOSE = "registration"
# An open handover older than this is flagged for a supervisor.
STALE_AFTER = timedelta(hours=24)


class TransferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"  # the giver took the request back
    REFUSED = "refused"  # the receiver declined it


@dataclass(frozen=True, slots=True)
class RegisteredEvidence:
    """What an item is, as registered: carried by the ``registered`` event into the ledger."""

    type: EvidenceType
    description: str
    collected_by: str
    collected_at: datetime
    collected_location: str
    parent_id: str | None
    hashes: DigitalHashes | None
    acquisition_tool: str | None

    @classmethod
    def of(cls, item: EvidenceItem) -> RegisteredEvidence:
        return cls(
            type=item.type,
            description=item.description,
            collected_by=item.collected_by,
            collected_at=item.collected_at,
            collected_location=item.collected_location,
            parent_id=item.parent_id,
            hashes=item.hashes,
            acquisition_tool=item.acquisition_tool,
        )


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    """One accepted custody step: a leaf of the ledger.

    ``at`` is when custody changed (the acceptance); ``requested_at`` when the giver said they
    handed over; ``recorded_at`` when the server recorded the step. ``seal_number`` and
    ``seal_condition`` are the seal *after* the step. ``evidence`` is set on the ``registered``
    event only.
    """

    event_id: str
    item_id: str
    case_id: str
    sequence: int
    kind: CustodyKind
    from_user: str
    to_user: str
    purpose: str
    location: str
    at: datetime
    seal_number: str
    seal_condition: SealCondition
    recorded_at: datetime
    transfer_id: str | None = None
    requested_at: datetime | None = None
    seal_change_reason: str | None = None
    receipt_note: str | None = None
    evidence: RegisteredEvidence | None = None

    def __post_init__(self) -> None:
        # Events are rebuilt from stored rows to recompute ledger leaves: refuse what the
        # domain could never have produced (naive times, unknown kinds) instead of hashing it.
        object.__setattr__(self, "kind", CustodyKind(self.kind))
        object.__setattr__(self, "seal_condition", SealCondition(self.seal_condition))
        object.__setattr__(self, "at", utc(self.at, "at"))
        object.__setattr__(self, "recorded_at", utc(self.recorded_at, "recorded_at"))
        if self.requested_at is not None:
            object.__setattr__(self, "requested_at", utc(self.requested_at, "requested_at"))
        if not isinstance(self.sequence, int) or isinstance(self.sequence, bool):
            raise InvalidValue("sequence", "must be an integer")
        if self.sequence < 0:
            raise InvalidValue("sequence", "must not be negative")
        if (self.kind is CustodyKind.REGISTERED) != (self.evidence is not None):
            raise InvalidValue("evidence", "set on the registered event, and only there")


@dataclass(frozen=True, slots=True)
class CustodyTransfer:
    """A requested movement; custody passes only when ``to_user`` accepts it.

    ``at`` is the handover time the giver declares; ``recorded_at`` when the request was
    recorded (staleness is measured from it). ``seal_number``/``seal_condition`` are the seal
    as the giver hands it over.
    """

    transfer_id: str
    item_id: str
    kind: CustodyKind
    from_user: str
    to_user: str
    purpose: str
    location: str
    at: datetime
    recorded_at: datetime
    seal_number: str
    seal_condition: SealCondition
    seal_change_reason: str | None = None
    status: TransferStatus = TransferStatus.PENDING
    closed_by: str | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None

    @property
    def is_pending(self) -> bool:
        return self.status is TransferStatus.PENDING


def _broken(rule: CustodyRule, message: str) -> CustodyRuleBroken:
    return CustodyRuleBroken(rule, message)


def _derivable(parent: EvidenceType, child: EvidenceType) -> bool:
    return (parent in DIGITAL_TYPES) == (child in DIGITAL_TYPES)


def register_evidence(
    *,
    item_id: str,
    case_id: str,
    type: EvidenceType | str,
    description: str,
    collected_by: str,
    collected_at: datetime,
    collected_location: str,
    seal_number: str,
    seal_condition: SealCondition | str,
    storage_location: str,
    registered_by: str,
    registered_at: datetime,
    event_id: str,
    parent: EvidenceItem | None = None,
    hashes: DigitalHashes | None = None,
    acquisition_tool: str | None = None,
) -> tuple[EvidenceItem, CustodyEvent]:
    """A new item held by ``registered_by``, and the ``registered`` event opening its chain.

    ``registered_at`` is the server's clock. A derived item passes its ``parent``: it must be
    in the same case, of a kind it can derive from, not disposed, held by ``registered_by``,
    and collected no earlier than the parent.
    """
    item = EvidenceItem(
        id=item_id,
        case_id=case_id,
        type=parse_evidence_type(type),
        description=description,
        collected_by=collected_by,
        collected_at=collected_at,
        collected_location=collected_location,
        seal_number=seal_number,
        seal_condition=parse_seal_condition(seal_condition),
        storage_location=storage_location,
        registered_by=registered_by,
        registered_at=registered_at,
        custodian=registered_by,
        parent_id=parent.id if parent is not None else None,
        hashes=hashes,
        acquisition_tool=acquisition_tool,
    )
    if not not_in_future(item.collected_at, item.registered_at):
        raise _broken(
            CustodyRule.TIME_IN_FUTURE,
            f"collected_at is more than {CLOCK_SKEW} after the registration",
        )
    if parent is not None:
        _check_parent(item, parent)
    event = CustodyEvent(
        event_id=identifier(event_id, "event_id"),
        item_id=item.id,
        case_id=item.case_id,
        sequence=0,
        kind=CustodyKind.REGISTERED,
        from_user=item.collected_by,
        to_user=item.registered_by,
        purpose=REGISTRATION_PURPOSE,
        location=item.storage_location,
        at=item.registered_at,
        seal_number=item.seal_number,
        seal_condition=item.seal_condition,
        recorded_at=item.registered_at,
        evidence=RegisteredEvidence.of(item),
    )
    return item, event


def _check_parent(item: EvidenceItem, parent: EvidenceItem) -> None:
    if parent.case_id != item.case_id:
        raise _broken(
            CustodyRule.DERIVED_FROM_OTHER_CASE,
            f"parent {parent.id} belongs to case {parent.case_id}, not {item.case_id}",
        )
    if not _derivable(parent.type, item.type):
        raise _broken(
            CustodyRule.DERIVATION_NOT_POSSIBLE,
            f"a {item.type} cannot be derived from a {parent.type}",
        )
    if parent.is_disposed:
        raise _broken(CustodyRule.ITEM_DISPOSED, f"parent {parent.id} has been disposed of")
    if parent.custodian != item.registered_by:
        raise _broken(
            CustodyRule.NOT_CURRENT_CUSTODIAN,
            f"only the parent's custodian ({parent.custodian}) can register an item from it",
        )
    if item.collected_at < parent.collected_at:
        raise _broken(
            CustodyRule.TIME_GOES_BACKWARDS,
            "a derived item cannot be collected before its parent",
        )


def request_transfer(
    item: EvidenceItem,
    *,
    transfer_id: str,
    kind: CustodyKind | str,
    from_user: str,
    to_user: str,
    purpose: str,
    location: str,
    at: datetime,
    recorded_at: datetime,
    seal_number: str | None = None,
    seal_condition: SealCondition | str | None = None,
    seal_change_reason: str | None = None,
) -> CustodyTransfer:
    """Open a handover of ``item`` from its custodian ``from_user`` to ``to_user``.

    ``seal_number``/``seal_condition`` default to the item's current seal; changing either
    needs ``seal_change_reason``. Marks the item ``transfer_pending``.
    """
    try:
        kind = CustodyKind(kind)
    except ValueError:
        raise InvalidValue("kind", f"unknown custody kind {kind!r}") from None
    if kind not in MOVEMENT_KINDS:
        raise InvalidValue("kind", f"{kind} is not a movement")
    transfer_id = identifier(transfer_id, "transfer_id")
    from_user = identifier(from_user, "from_user")
    to_user = identifier(to_user, "to_user")
    purpose = text(purpose, "purpose", max_length=500)
    location = text(location, "location")
    at = utc(at, "at")
    recorded_at = utc(recorded_at, "recorded_at")
    new_seal = text(seal_number, "seal_number", max_length=64) if seal_number else None
    new_condition = parse_seal_condition(seal_condition) if seal_condition is not None else None
    reason = optional_text(seal_change_reason, "seal_change_reason", max_length=500)

    if item.is_disposed:
        raise _broken(CustodyRule.ITEM_DISPOSED, f"item {item.id} was {item.status}")
    if item.pending_transfer is not None:
        raise _broken(
            CustodyRule.TRANSFER_ALREADY_PENDING,
            f"transfer {item.pending_transfer.transfer_id} awaits "
            f"{item.pending_transfer.to_user}'s acceptance",
        )
    if from_user != item.custodian:
        raise _broken(
            CustodyRule.NOT_CURRENT_CUSTODIAN,
            f"{from_user} does not hold item {item.id}; {item.custodian} does",
        )
    if to_user == from_user:
        raise _broken(CustodyRule.SELF_TRANSFER, "giver and receiver must be two people")
    _check_times(item, at, recorded_at)
    if kind is CustodyKind.RETURNED and item.away_kind is None:
        raise _broken(
            CustodyRule.RETURN_WITHOUT_DEPARTURE,
            "returned follows sent_to_lab or court_exhibit; use transfer or check_in",
        )
    seal = new_seal if new_seal is not None else item.seal_number
    condition = new_condition if new_condition is not None else item.seal_condition
    seal_changed = seal != item.seal_number or condition is not item.seal_condition
    if seal_changed and reason is None:
        raise _broken(
            CustodyRule.SEAL_CHANGE_NEEDS_REASON,
            f"seal {item.seal_number} ({item.seal_condition}) -> {seal} ({condition}) "
            "needs a reason",
        )
    transfer = CustodyTransfer(
        transfer_id=transfer_id,
        item_id=item.id,
        kind=kind,
        from_user=from_user,
        to_user=to_user,
        purpose=purpose,
        location=location,
        at=at,
        recorded_at=recorded_at,
        seal_number=seal,
        seal_condition=condition,
        seal_change_reason=reason,
    )
    item.pending_transfer = transfer
    item.status = EvidenceStatus.TRANSFER_PENDING
    item.version += 1
    return transfer


def accept_transfer(
    item: EvidenceItem,
    transfer_id: str,
    *,
    by_user: str,
    at: datetime,
    event_id: str,
    recorded_at: datetime,
    seal_condition: SealCondition | str | None = None,
    receipt_note: str | None = None,
) -> tuple[CustodyTransfer, CustodyEvent]:
    """The receiver takes custody: the accepted transfer and the custody event to record.

    ``seal_condition`` is the seal as the receiver finds it (None: as the giver declared); a
    different condition needs ``receipt_note``.
    """
    by_user = identifier(by_user, "by_user")
    at = utc(at, "at")
    recorded_at = utc(recorded_at, "recorded_at")
    observed = parse_seal_condition(seal_condition) if seal_condition is not None else None
    note = optional_text(receipt_note, "receipt_note", max_length=500)

    if item.is_disposed:
        raise _broken(CustodyRule.ITEM_DISPOSED, f"item {item.id} was {item.status}")
    transfer = item.pending_transfer
    if transfer is None or transfer.transfer_id != transfer_id or not transfer.is_pending:
        raise _broken(
            CustodyRule.TRANSFER_NOT_PENDING,
            f"transfer {transfer_id} is not the open transfer of item {item.id}",
        )
    if by_user != transfer.to_user:
        raise _broken(
            CustodyRule.NOT_THE_RECEIVER,
            f"transfer {transfer_id} is addressed to {transfer.to_user}, not {by_user}",
        )
    if transfer.from_user != item.custodian:
        raise _broken(
            CustodyRule.CUSTODY_GAP,
            f"transfer {transfer_id} is from {transfer.from_user}, "
            f"but item {item.id} is held by {item.custodian}",
        )
    if at < transfer.at:
        raise _broken(
            CustodyRule.TIME_GOES_BACKWARDS, "acceptance cannot predate the handover request"
        )
    _check_times(item, at, recorded_at)
    condition = observed if observed is not None else transfer.seal_condition
    if condition is not transfer.seal_condition and note is None:
        raise _broken(
            CustodyRule.SEAL_CHANGE_NEEDS_REASON,
            f"the seal was handed over {transfer.seal_condition} and found {condition}: "
            "a receipt note must say what was seen",
        )
    event = CustodyEvent(
        event_id=identifier(event_id, "event_id"),
        item_id=item.id,
        case_id=item.case_id,
        sequence=item.last_sequence + 1,
        kind=transfer.kind,
        from_user=transfer.from_user,
        to_user=transfer.to_user,
        purpose=transfer.purpose,
        location=transfer.location,
        at=at,
        seal_number=transfer.seal_number,
        seal_condition=condition,
        recorded_at=recorded_at,
        transfer_id=transfer.transfer_id,
        requested_at=transfer.at,
        seal_change_reason=transfer.seal_change_reason,
        receipt_note=note,
    )
    accepted = replace(transfer, status=TransferStatus.ACCEPTED, closed_by=by_user, closed_at=at)
    _apply(item, event)
    return accepted, event


def cancel_transfer(
    item: EvidenceItem,
    transfer_id: str,
    *,
    by_user: str,
    at: datetime,
    reason: str | None = None,
) -> CustodyTransfer:
    """The giver withdraws an open transfer, or the receiver refuses it. Custody is unchanged.

    Not a custody event (nobody's custody changed), so it is not a ledger leaf; the closed
    transfer keeps who closed it, when and why.
    """
    by_user = identifier(by_user, "by_user")
    at = utc(at, "at")
    why = optional_text(reason, "reason", max_length=500)
    transfer = item.pending_transfer
    if transfer is None or transfer.transfer_id != transfer_id or not transfer.is_pending:
        raise _broken(
            CustodyRule.TRANSFER_NOT_PENDING,
            f"transfer {transfer_id} is not the open transfer of item {item.id}",
        )
    if by_user == transfer.from_user:
        status = TransferStatus.WITHDRAWN
    elif by_user == transfer.to_user:
        status = TransferStatus.REFUSED
    else:
        raise _broken(
            CustodyRule.NOT_PARTY_TO_TRANSFER,
            f"only {transfer.from_user} or {transfer.to_user} can cancel this transfer",
        )
    if at < transfer.recorded_at - CLOCK_SKEW:
        raise _broken(
            CustodyRule.TIME_GOES_BACKWARDS, "a transfer cannot be closed before it was opened"
        )
    closed = replace(transfer, status=status, closed_by=by_user, closed_at=at, close_reason=why)
    item.pending_transfer = None
    item.status = EvidenceStatus.IN_CUSTODY
    item.version += 1
    return closed


def flag_stale_transfers(
    transfers: Iterable[CustodyTransfer], *, now: datetime, older_than: timedelta = STALE_AFTER
) -> list[CustodyTransfer]:
    """Open transfers recorded more than ``older_than`` before ``now``, oldest first."""
    cutoff = utc(now, "now") - older_than
    stale = [t for t in transfers if t.is_pending and t.recorded_at <= cutoff]
    return sorted(stale, key=lambda t: (t.recorded_at, t.transfer_id))


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """One broken rule found in a stored chain: the position in the list, the rule, and why."""

    position: int
    event_id: str
    rule: CustodyRule
    message: str


def find_chain_breaks(events: Sequence[CustodyEvent]) -> list[ChainBreak]:
    """Every rule a stored chain of one item's events breaks, in order (empty: a sound chain).

    ``events`` are in sequence order as the store returns them. This replays the same
    invariants the live functions enforce, so a chain rebuilt from edited or deleted rows is
    caught even before the ledger is consulted.
    """
    breaks: list[ChainBreak] = []

    def broke(pos: int, event: CustodyEvent, rule: CustodyRule, message: str) -> None:
        breaks.append(ChainBreak(pos, event.event_id, rule, message))

    if not events:
        return breaks
    first = events[0]
    away = False
    for pos, event in enumerate(events):
        if event.item_id != first.item_id:
            broke(pos, event, CustodyRule.EVENT_OF_ANOTHER_ITEM, f"event of {event.item_id}")
            continue
        if event.sequence != pos:
            broke(
                pos,
                event,
                CustodyRule.CUSTODY_GAP,
                f"sequence {event.sequence} where {pos} was expected",
            )
        if not not_in_future(event.at, event.recorded_at):
            broke(pos, event, CustodyRule.TIME_IN_FUTURE, "dated after it was recorded")
        if pos == 0:
            if event.kind is not CustodyKind.REGISTERED:
                broke(pos, event, CustodyRule.CUSTODY_GAP, "the chain must open with registration")
            continue
        prev = events[pos - 1]
        if event.kind is CustodyKind.REGISTERED:
            broke(pos, event, CustodyRule.CUSTODY_GAP, "registered twice")
        if prev.kind in DISPOSAL_KINDS:
            broke(pos, event, CustodyRule.ITEM_DISPOSED, f"moved after {prev.kind}")
        if event.from_user != prev.to_user:
            broke(
                pos,
                event,
                CustodyRule.CUSTODY_GAP,
                f"{event.from_user} hands over, but {prev.to_user} received it last",
            )
        if event.from_user == event.to_user:
            broke(pos, event, CustodyRule.SELF_TRANSFER, "giver and receiver are the same")
        if event.at < prev.at:
            broke(pos, event, CustodyRule.TIME_GOES_BACKWARDS, "predates the previous step")
        seal_changed = (event.seal_number, event.seal_condition) != (
            prev.seal_number,
            prev.seal_condition,
        )
        if seal_changed and event.seal_change_reason is None and event.receipt_note is None:
            broke(pos, event, CustodyRule.SEAL_CHANGE_NEEDS_REASON, "seal changed silently")
        if event.kind is CustodyKind.RETURNED and not away:
            broke(pos, event, CustodyRule.RETURN_WITHOUT_DEPARTURE, "returned from nowhere")
        if event.kind in AWAY_KINDS:
            away = True
        elif event.kind is CustodyKind.RETURNED:
            away = False
    return breaks


def _check_times(item: EvidenceItem, at: datetime, recorded_at: datetime) -> None:
    last = item.last_movement_at or item.registered_at
    if at < last:
        raise _broken(
            CustodyRule.TIME_GOES_BACKWARDS,
            f"{at.isoformat()} predates the previous step ({last.isoformat()})",
        )
    if not not_in_future(at, recorded_at):
        raise _broken(
            CustodyRule.TIME_IN_FUTURE,
            f"{at.isoformat()} is more than {CLOCK_SKEW} after it was recorded",
        )


def _apply(item: EvidenceItem, event: CustodyEvent) -> None:
    """Move ``item`` to the state after ``event`` (which the caller has checked)."""
    if event.from_user != item.custodian or event.sequence != item.last_sequence + 1:
        raise _broken(CustodyRule.CUSTODY_GAP, f"event {event.event_id} does not follow on")
    item.custodian = event.to_user
    item.seal_number = event.seal_number
    item.seal_condition = event.seal_condition
    item.storage_location = event.location
    item.last_sequence = event.sequence
    item.last_movement_at = event.at
    item.pending_transfer = None
    if event.kind in AWAY_KINDS:
        item.away_kind = event.kind
    elif event.kind is CustodyKind.RETURNED:
        item.away_kind = None
    item.status = (
        EvidenceStatus.DISPOSED if event.kind in DISPOSAL_KINDS else EvidenceStatus.IN_CUSTODY
    )
    item.version += 1
