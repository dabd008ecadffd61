"""Custody: a full legal chain, and every invariant refused by its rule's name."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from cpu_forensics.domain.custody import (
    CustodyEvent,
    CustodyKind,
    TransferStatus,
    accept_transfer,
    cancel_transfer,
    find_chain_breaks,
    flag_stale_transfers,
    register_evidence,
    request_transfer,
)
from cpu_forensics.domain.evidence import (
    DigitalHashes,
    EvidenceItem,
    EvidenceStatus,
    EvidenceType,
    SealCondition,
)
from cpu_forensics.domain.rules import CustodyRule, CustodyRuleBroken, InvalidValue

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids):06d}"


def register(
    *,
    by: str = "officer.dara",
    at: datetime = T0,
    type: EvidenceType = EvidenceType.CLOTHING,
    parent: EvidenceItem | None = None,
    case_id: str = "case-000001",
    **extra: object,
) -> tuple[EvidenceItem, CustodyEvent]:
    fields: dict[str, object] = {
        "item_id": new_id("ev"),
        "case_id": case_id,
        "type": type,
        "description": "Pink cotton dress, size 8, torn at the hem",
        "collected_by": "officer.dara",
        "collected_at": at - timedelta(hours=2),
        "collected_location": "Scene, Sangkat Boeng Keng Kang 1",
        "seal_number": "SEAL-0001",
        "seal_condition": SealCondition.INTACT,
        "storage_location": "Phnom Penh HQ store, shelf B3",
        "registered_by": by,
        "registered_at": at,
        "event_id": new_id("evt"),
        "parent": parent,
    }
    fields.update(extra)
    return register_evidence(**fields)  # type: ignore[arg-type]


def move(
    item: EvidenceItem,
    kind: CustodyKind,
    to_user: str,
    *,
    at: datetime,
    accept_after: timedelta = timedelta(minutes=5),
    **extra: object,
) -> CustodyEvent:
    """Request and accept one movement; the recorded times are the claimed ones."""
    transfer = request_transfer(
        item,
        transfer_id=new_id("tr"),
        kind=kind,
        from_user=item.custodian,
        to_user=to_user,
        purpose=f"{kind} for the case file",
        location="Phnom Penh HQ store",
        at=at,
        recorded_at=at,
        **extra,  # type: ignore[arg-type]
    )
    accepted_at = at + accept_after
    accepted, event = accept_transfer(
        item,
        transfer.transfer_id,
        by_user=to_user,
        at=accepted_at,
        event_id=new_id("evt"),
        recorded_at=accepted_at,
    )
    assert accepted.status is TransferStatus.ACCEPTED
    return event


def refused(rule: CustodyRule) -> pytest.RaisesExc[CustodyRuleBroken]:
    return pytest.raises(CustodyRuleBroken, match=f"^{rule.value}: ")


# --- the legal chain -------------------------------------------------------------------------


def test_a_full_legal_chain_from_collection_to_destruction() -> None:
    item, opening = register()
    chain = [opening]
    t = T0 + timedelta(hours=1)
    chain.append(move(item, CustodyKind.CHECK_IN, "store.sokha", at=t))
    chain.append(move(item, CustodyKind.SENT_TO_LAB, "lab.intake.vanna", at=t + timedelta(days=1)))
    chain.append(move(item, CustodyKind.TRANSFER, "analyst.chan", at=t + timedelta(days=2)))
    chain.append(
        move(
            item,
            CustodyKind.RETURNED,
            "store.sokha",
            at=t + timedelta(days=9),
            seal_number="SEAL-0002",
            seal_change_reason="opened for sampling, resealed by the lab",
        )
    )
    chain.append(move(item, CustodyKind.COURT_EXHIBIT, "clerk.mony", at=t + timedelta(days=30)))
    chain.append(move(item, CustodyKind.RETURNED, "store.sokha", at=t + timedelta(days=31)))
    chain.append(move(item, CustodyKind.DESTROYED, "officer.rath", at=t + timedelta(days=400)))

    assert [e.sequence for e in chain] == list(range(len(chain)))
    assert [e.kind for e in chain][:2] == [CustodyKind.REGISTERED, CustodyKind.CHECK_IN]
    for previous, step in itertools.pairwise(chain):
        assert step.from_user == previous.to_user
    assert item.status is EvidenceStatus.DISPOSED
    assert item.custodian == "officer.rath"
    assert item.seal_number == "SEAL-0002"
    assert find_chain_breaks(chain) == []
    # The returned step carries both the claimed handover and the acceptance.
    returned = chain[4]
    assert returned.requested_at is not None and returned.at > returned.requested_at
    assert returned.seal_change_reason == "opened for sampling, resealed by the lab"


def test_registration_opens_the_chain_and_makes_the_registrar_custodian() -> None:
    item, event = register(by="officer.sophea", collected_by="Dr. Sreymom, Calmette Hospital")
    assert item.custodian == "officer.sophea"
    assert item.status is EvidenceStatus.IN_CUSTODY
    assert event.kind is CustodyKind.REGISTERED and event.sequence == 0
    assert event.from_user == "Dr. Sreymom, Calmette Hospital"
    assert event.to_user == "officer.sophea"
    assert event.evidence is not None and event.evidence.type is EvidenceType.CLOTHING


def test_a_transfer_takes_effect_only_when_accepted() -> None:
    item, _ = register()
    transfer = request_transfer(
        item,
        transfer_id="tr-pending-1",
        kind="transfer",
        from_user="officer.dara",
        to_user="analyst.chan",
        purpose="DNA swabbing",
        location="Lab reception",
        at=T0 + timedelta(hours=1),
        recorded_at=T0 + timedelta(hours=1),
    )
    assert transfer.is_pending
    assert item.status is EvidenceStatus.TRANSFER_PENDING
    assert item.custodian == "officer.dara"  # still the giver's until accepted


# --- every rule, refused by name -----------------------------------------------------------


def test_not_current_custodian() -> None:
    item, _ = register()
    with refused(CustodyRule.NOT_CURRENT_CUSTODIAN):
        request_transfer(
            item,
            transfer_id="tr-x",
            kind="transfer",
            from_user="officer.intruder",
            to_user="analyst.chan",
            purpose="p",
            location="l",
            at=T0 + timedelta(hours=1),
            recorded_at=T0 + timedelta(hours=1),
        )


def test_item_disposed_nothing_moves_after_release_or_destruction() -> None:
    for final in (CustodyKind.RELEASED, CustodyKind.DESTROYED):
        item, _ = register()
        move(item, final, "officer.rath", at=T0 + timedelta(hours=1))
        with refused(CustodyRule.ITEM_DISPOSED):
            move(item, CustodyKind.TRANSFER, "officer.dara", at=T0 + timedelta(hours=2))


def test_seal_change_needs_reason() -> None:
    item, _ = register()
    with refused(CustodyRule.SEAL_CHANGE_NEEDS_REASON):
        move(item, CustodyKind.TRANSFER, "analyst.chan", at=T0, seal_number="SEAL-0099")
    with refused(CustodyRule.SEAL_CHANGE_NEEDS_REASON):
        move(item, CustodyKind.TRANSFER, "analyst.chan", at=T0, seal_condition="damaged")
    assert item.status is EvidenceStatus.IN_CUSTODY and item.pending_transfer is None
    event = move(
        item,
        CustodyKind.TRANSFER,
        "analyst.chan",
        at=T0,
        seal_number="SEAL-0099",
        seal_change_reason="bag split in transit, repacked",
    )
    assert event.seal_number == "SEAL-0099"


def test_seal_found_in_another_condition_needs_a_receipt_note() -> None:
    item, _ = register()
    transfer = request_transfer(
        item,
        transfer_id="tr-seal",
        kind="transfer",
        from_user="officer.dara",
        to_user="analyst.chan",
        purpose="p",
        location="l",
        at=T0,
        recorded_at=T0,
    )
    with refused(CustodyRule.SEAL_CHANGE_NEEDS_REASON):
        accept_transfer(
            item,
            transfer.transfer_id,
            by_user="analyst.chan",
            at=T0,
            event_id="evt-seal",
            recorded_at=T0,
            seal_condition="broken",
        )
    _, event = accept_transfer(
        item,
        transfer.transfer_id,
        by_user="analyst.chan",
        at=T0,
        event_id="evt-seal",
        recorded_at=T0,
        seal_condition="broken",
        receipt_note="seal torn on arrival; photographed",
    )
    assert event.seal_condition is SealCondition.BROKEN
    assert item.seal_condition is SealCondition.BROKEN


def test_transfer_already_pending() -> None:
    item, _ = register()
    request_transfer(
        item,
        transfer_id="tr-1",
        kind="transfer",
        from_user="officer.dara",
        to_user="analyst.chan",
        purpose="p",
        location="l",
        at=T0,
        recorded_at=T0,
    )
    with refused(CustodyRule.TRANSFER_ALREADY_PENDING):
        request_transfer(
            item,
            transfer_id="tr-2",
            kind="transfer",
            from_user="officer.dara",
            to_user="store.sokha",
            purpose="p",
            location="l",
            at=T0,
            recorded_at=T0,
        )


def test_not_the_receiver() -> None:
    item, _ = register()
    transfer = request_transfer(
        item,
        transfer_id="tr-1",
        kind="transfer",
        from_user="officer.dara",
        to_user="analyst.chan",
        purpose="p",
        location="l",
        at=T0,
        recorded_at=T0,
    )
    for wrong in ("officer.dara", "someone.else"):
        with refused(CustodyRule.NOT_THE_RECEIVER):
            accept_transfer(
                item, transfer.transfer_id, by_user=wrong, at=T0, event_id="e-1", recorded_at=T0
            )
    assert item.custodian == "officer.dara"


def test_time_goes_backwards() -> None:
    item, _ = register(at=T0)
    with refused(CustodyRule.TIME_GOES_BACKWARDS):  # before the registration
        move(item, CustodyKind.TRANSFER, "analyst.chan", at=T0 - timedelta(minutes=1))
    move(item, CustodyKind.TRANSFER, "analyst.chan", at=T0 + timedelta(hours=1))
    with refused(CustodyRule.TIME_GOES_BACKWARDS):  # before the previous step's acceptance
        move(item, CustodyKind.TRANSFER, "store.sokha", at=T0 + timedelta(minutes=30))
    with refused(CustodyRule.TIME_GOES_BACKWARDS):  # accepted before it was handed over
        move(
            item,
            CustodyKind.TRANSFER,
            "store.sokha",
            at=T0 + timedelta(hours=3),
            accept_after=timedelta(minutes=-1),
        )


def test_time_in_future() -> None:
    item, _ = register()
    with refused(CustodyRule.TIME_IN_FUTURE):
        request_transfer(
            item,
            transfer_id="tr-f",
            kind="transfer",
            from_user="officer.dara",
            to_user="analyst.chan",
            purpose="p",
            location="l",
            at=T0 + timedelta(days=1),
            recorded_at=T0 + timedelta(hours=1),
        )
    with refused(CustodyRule.TIME_IN_FUTURE):
        register(collected_at=T0 + timedelta(hours=1))


def test_transfer_not_pending() -> None:
    item, _ = register()
    with refused(CustodyRule.TRANSFER_NOT_PENDING):
        accept_transfer(item, "tr-none", by_user="x", at=T0, event_id="e", recorded_at=T0)
    event = move(item, CustodyKind.TRANSFER, "analyst.chan", at=T0)
    with refused(CustodyRule.TRANSFER_NOT_PENDING):  # accepting twice
        accept_transfer(
            item,
            event.transfer_id or "",
            by_user="analyst.chan",
            at=T0,
            event_id="e",
            recorded_at=T0,
        )


def test_self_transfer() -> None:
    item, _ = register()
    with refused(CustodyRule.SELF_TRANSFER):
        move(item, CustodyKind.CHECK_IN, "officer.dara", at=T0)


def test_return_without_departure() -> None:
    item, _ = register()
    with refused(CustodyRule.RETURN_WITHOUT_DEPARTURE):
        move(item, CustodyKind.RETURNED, "store.sokha", at=T0)


def test_custody_gap_on_accepting_a_stale_request() -> None:
    # A store that lost a step: the item's holder is not the giver of its open transfer.
    item, _ = register()
    transfer = request_transfer(
        item,
        transfer_id="tr-1",
        kind="transfer",
        from_user="officer.dara",
        to_user="analyst.chan",
        purpose="p",
        location="l",
        at=T0,
        recorded_at=T0,
    )
    item.custodian = "officer.other"
    with refused(CustodyRule.CUSTODY_GAP):
        accept_transfer(
            item,
            transfer.transfer_id,
            by_user="analyst.chan",
            at=T0,
            event_id="e",
            recorded_at=T0,
        )


def test_not_party_to_transfer_and_cancellation() -> None:
    item, _ = register()

    def open_transfer(tid: str) -> None:
        request_transfer(
            item,
            transfer_id=tid,
            kind="transfer",
            from_user="officer.dara",
            to_user="analyst.chan",
            purpose="p",
            location="l",
            at=T0,
            recorded_at=T0,
        )

    open_transfer("tr-1")
    with refused(CustodyRule.NOT_PARTY_TO_TRANSFER):
        cancel_transfer(item, "tr-1", by_user="someone.else", at=T0)
    withdrawn = cancel_transfer(item, "tr-1", by_user="officer.dara", at=T0)
    assert withdrawn.status is TransferStatus.WITHDRAWN
    assert item.status is EvidenceStatus.IN_CUSTODY
    open_transfer("tr-2")
    refusal = cancel_transfer(item, "tr-2", by_user="analyst.chan", at=T0, reason="seal broken")
    assert refusal.status is TransferStatus.REFUSED and refusal.close_reason == "seal broken"
    assert item.custodian == "officer.dara"


def test_derived_items_rules() -> None:
    swab, _ = register(type=EvidenceType.BIOLOGICAL_SAMPLE)
    with refused(CustodyRule.DERIVED_FROM_OTHER_CASE):
        register(type=EvidenceType.DNA_EXTRACT, parent=swab, case_id="case-000002")
    with refused(CustodyRule.DERIVATION_NOT_POSSIBLE):
        register(
            type=EvidenceType.FORENSIC_IMAGE,
            parent=swab,
            hashes=DigitalHashes(sha256="a" * 64),
            acquisition_tool="FTK Imager 4.7",
        )
    with refused(CustodyRule.NOT_CURRENT_CUSTODIAN):
        register(type=EvidenceType.DNA_EXTRACT, parent=swab, by="analyst.chan")
    with refused(CustodyRule.TIME_GOES_BACKWARDS):
        register(type=EvidenceType.DNA_EXTRACT, parent=swab, collected_at=T0 - timedelta(days=1))
    extract, event = register(type=EvidenceType.DNA_EXTRACT, parent=swab)
    assert extract.parent_id == swab.id
    assert event.evidence is not None and event.evidence.parent_id == swab.id
    move(swab, CustodyKind.DESTROYED, "officer.rath", at=T0 + timedelta(hours=1))
    with refused(CustodyRule.ITEM_DISPOSED):
        register(type=EvidenceType.DNA_EXTRACT, parent=swab, by="officer.rath")


def test_registration_is_not_a_movement_one_can_request() -> None:
    item, _ = register()
    with pytest.raises(InvalidValue):
        move(item, CustodyKind.REGISTERED, "analyst.chan", at=T0)


# --- stale transfers --------------------------------------------------------------------------


def test_pending_transfers_older_than_the_threshold_are_flagged_oldest_first() -> None:
    transfers = []
    for hours_ago in (30, 2, 50):
        item, _ = register()
        at = T0 - timedelta(hours=hours_ago)
        item.last_movement_at = at
        transfers.append(
            request_transfer(
                item,
                transfer_id=f"tr-{hours_ago}",
                kind="transfer",
                from_user="officer.dara",
                to_user="analyst.chan",
                purpose="p",
                location="l",
                at=at,
                recorded_at=at,
            )
        )
    closed = dataclasses.replace(transfers[0], status=TransferStatus.ACCEPTED)
    flagged = flag_stale_transfers([*transfers, closed], now=T0)
    assert [t.transfer_id for t in flagged] == ["tr-50", "tr-30"]
    assert (
        flag_stale_transfers(transfers, now=T0, older_than=timedelta(hours=1))[-1] == (transfers[1])
    )


# --- a stored chain, replayed ------------------------------------------------------------------


def _legal_chain() -> list[CustodyEvent]:
    item, opening = register()
    t = T0 + timedelta(hours=1)
    return [
        opening,
        move(item, CustodyKind.CHECK_IN, "store.sokha", at=t),
        move(item, CustodyKind.SENT_TO_LAB, "lab.intake.vanna", at=t + timedelta(days=1)),
        move(item, CustodyKind.TRANSFER, "analyst.chan", at=t + timedelta(days=2)),
        move(item, CustodyKind.RETURNED, "store.sokha", at=t + timedelta(days=3)),
    ]


def test_a_stored_chain_with_a_deleted_row_shows_a_custody_gap() -> None:
    chain = _legal_chain()
    del chain[2]
    rules = {b.rule for b in find_chain_breaks(chain)}
    assert CustodyRule.CUSTODY_GAP in rules


def test_a_stored_chain_with_an_edited_giver_or_swapped_rows_is_broken() -> None:
    chain = _legal_chain()
    edited = [*chain]
    edited[3] = dataclasses.replace(chain[3], from_user="officer.nobody")
    breaks = find_chain_breaks(edited)
    assert breaks[0].rule is CustodyRule.CUSTODY_GAP and breaks[0].position == 3
    swapped = [chain[0], chain[1], chain[3], chain[2], chain[4]]
    assert find_chain_breaks(swapped)[0].position == 2
    after_disposal = [
        *chain[:2],
        dataclasses.replace(chain[2], kind=CustodyKind.DESTROYED),
        *chain[3:],
    ]
    assert CustodyRule.ITEM_DISPOSED in {b.rule for b in find_chain_breaks(after_disposal)}
    silent_seal = [*chain[:3], dataclasses.replace(chain[3], seal_number="SEAL-FAKE"), *chain[4:]]
    assert CustodyRule.SEAL_CHANGE_NEEDS_REASON in {b.rule for b in find_chain_breaks(silent_seal)}


def test_custody_events_refuse_naive_times() -> None:
    _, event = register()
    with pytest.raises(InvalidValue):
        dataclasses.replace(event, at=datetime(2025, 3, 1, 8, 0))


def test_a_stored_chain_mixing_two_items_is_broken() -> None:
    chain = _legal_chain()
    other = _legal_chain()
    mixed = [*chain[:2], other[2], *chain[3:]]
    breaks = find_chain_breaks(mixed)
    assert breaks[0].rule is CustodyRule.EVENT_OF_ANOTHER_ITEM and breaks[0].position == 2


def test_every_custody_rule_is_exercised_by_these_tests() -> None:
    # A rule added to the catalogue without a test here fails this one.
    import pathlib

    source = pathlib.Path(__file__).read_text()
    untested = [r.name for r in CustodyRule if f"CustodyRule.{r.name}" not in source]
    assert untested == []
