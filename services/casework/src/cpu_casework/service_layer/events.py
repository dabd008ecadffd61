"""Handlers of the events casework consumes: opening cases, linking referrals, evidence.

Each runs inside the consumer's transaction, which also records the event in the inbox, so an
event redelivered with the same ``event_id`` is never applied twice. Natural keys cover the
rest: a referral is on at most one case (``case_referrals`` primary key) and a tip opens at most
one case (``cases (origin, origin_id)`` unique), so the same referral or tip published again
under a new event id (a redrive, a producer that re-published after a crash) changes nothing.

Same child, any order. Intake sets ``same_child_as_referral_id`` when the officer confirmed
that a referral's child is the child of an earlier referral. Events of different referrals
travel under different keys, possibly on different partitions, so the later referral may be
handled first. Hence:

1. the referral is already on a case: nothing to do - unless intake's "same child" decision
   came after this referral had opened its own case and the earlier referral is on another
   case: the referral then joins that case, and its own case is closed as transferred if no
   work was done on it yet (:func:`cpu_casework.domain.opening.close_as_same_child`);
2. the earlier referral is on a case: link this referral to it;
3. a case is waiting for this referral (a referral on it said "same child as this one"):
   link this referral to that case;
4. otherwise open a case, remembering "same child as X" on it, so that X joins this case when
   it arrives (step 3) instead of opening a second case for one child.

A child is therefore never left without a case because the other referral was late or never
triaged. On PostgreSQL the whole decision runs under a transaction-scoped advisory lock, so
two instances handling both referrals at once cannot each open a case.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.adapters.tables import EvidenceEventRow, EvidenceItemRow
from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.errors import CaseworkError
from cpu_casework.domain.opening import (
    SYSTEM_USER,
    TIP_TEAMS,
    close_as_same_child,
    hit_takes_over,
    initial_team,
    tip_case_priority,
    tip_concerns,
)
from cpu_casework.service_layer.context import Casework
from cpu_casework.service_layer.publishing import publish_case_events
from cpu_shared.contracts import forensics as evidence_contract
from cpu_shared.contracts.icac import TipEscalated
from cpu_shared.contracts.intake import ReferralTriaged
from cpu_shared.logging import get_logger
from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.ordering import claim_version

log = get_logger(__name__)

# Any fixed 64-bit number: serialises "open or link" decisions across casework instances.
_OPENING_LOCK = 0x0CA5E_0BE11


async def _opening_lock(session: AsyncSession) -> None:
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _OPENING_LOCK})


def _invalid(exc: CaseworkError) -> InvalidEvent:
    # Domain messages name fields, codes and ids only: safe as a dead-letter reason.
    return InvalidEvent(f"{exc.rule}: {exc}")


async def on_referral_triaged(
    session: AsyncSession, envelope: EventEnvelope, data: ReferralTriaged, cw: Casework
) -> str | None:
    """Open a case for a triaged referral, or link it to its child's case. Returns the id of
    the case changed (None when nothing changed)."""
    await _opening_lock(session)
    repo = cw.repository(session)
    referral_id = data.referral_id
    same_as = data.same_child_as_referral_id
    links = await repo.referral_links(referral_id, same_as)
    target, existing = links.same_as, links.own
    if existing is not None:
        # Already on a case: a redelivery, or intake's "same child" decision came after the
        # referral had opened its own case.
        if same_as is None or target == existing:
            log.info("referral already on a case; nothing to do", referral_id=referral_id)
            return None
        if target is None:
            await repo.remember_same_child(referral_id, existing, same_as)
            return None
        return await _move_to_child_case(session, envelope, data, cw, existing, target)
    if target is None:
        target = links.waiting
    now = cw.clock()
    try:
        if target is not None:
            case = await repo.get(target, for_update=True)
            assert case is not None
            if not _link(case, data, now):
                return None
        else:
            case = Case.open(
                case_id=str(uuid.uuid4()),
                origin="referral",
                origin_id=referral_id,
                opened_at=now,
                priority=data.priority,
                province_code=data.province_code,
                concerns=data.concerns,
                teams=data.teams,
                children=_children(data),
                referral_received_at=data.received_at,
            )
            repo.add(case, pseudonym=cw.case_pseudonym(case.case_id))
            team = initial_team(case.teams, case.child_homicide)
            if team is not None:
                case.assign(team, by=SYSTEM_USER, now=now)
    except CaseworkError as exc:
        raise _invalid(exc) from None
    events = case.pull_events()
    publish_case_events(session, repo, case, events, cw, correlation_id=envelope.correlation_id)
    await repo.save(case, same_child_as=same_as if target is None else None)
    if target is None:
        cw.metrics.cases_opened.labels("referral").inc()
        log.info(
            "case opened from referral",
            case_id=case.case_id,
            referral_id=referral_id,
            priority=case.priority,
            lead_team=case.lead_team,
        )
    else:
        _linked(cw, case, referral_id)
    return case.case_id


def _children(data: ReferralTriaged) -> list[Child]:
    return [Child(c.child_id, c.age_years, c.sex) for c in data.children]


def _link(case: Case, data: ReferralTriaged, now: datetime) -> bool:
    linked = case.link_referral(
        referral_id=data.referral_id,
        received_at=data.received_at,
        priority=data.priority,
        now=now,
        concerns=data.concerns,
        children=_children(data),
        teams=data.teams,
        by=SYSTEM_USER,
    )
    if linked and hit_takes_over(case, now=now):
        log.info("case is now a child homicide: reassigned to HIT", case_id=case.case_id)
    return linked


def _linked(cw: Casework, case: Case, referral_id: str) -> None:
    cw.metrics.referrals_linked.labels(str(case.is_closed).lower()).inc()
    log.info(
        "referral linked to its child's case",
        case_id=case.case_id,
        referral_id=referral_id,
        case_status=case.status,
    )
    if case.is_closed:
        log.warning(
            "a referral was linked to a closed case: a supervisor decides on reopening",
            case_id=case.case_id,
            referral_id=referral_id,
        )


async def _move_to_child_case(
    session: AsyncSession,
    envelope: EventEnvelope,
    data: ReferralTriaged,
    cw: Casework,
    from_id: str,
    into_id: str,
) -> str | None:
    """The referral opened case ``from_id``; intake now says its child is the child of a
    referral on case ``into_id``. Link it there, and close ``from_id`` as transferred if no
    work was done on it and no other referral keeps it (else a supervisor decides)."""
    repo = cw.repository(session)
    now = cw.clock()
    # Both rows locked, in id order: two such moves can never deadlock.
    cases = {cid: await repo.get(cid, for_update=True) for cid in sorted((from_id, into_id))}
    source, into = cases[from_id], cases[into_id]
    assert source is not None and into is not None
    assert data.same_child_as_referral_id is not None
    others = [r for r in await repo.active_referrals(from_id) if r != data.referral_id]
    try:
        if not _link(into, data, now):
            return None
        closed = not others and close_as_same_child(
            source,
            continued_on=into_id,
            referral_id=data.referral_id,
            same_as=data.same_child_as_referral_id,
            now=now,
        )
    except CaseworkError as exc:
        raise _invalid(exc) from None
    await repo.deactivate_referral(data.referral_id, from_id)
    for case in (into, source):
        events = case.pull_events()
        publish_case_events(session, repo, case, events, cw, correlation_id=envelope.correlation_id)
        if events:
            await repo.save(case)
    _linked(cw, into, data.referral_id)
    log.info(
        "referral moved to its child's case",
        referral_id=data.referral_id,
        from_case_id=from_id,
        case_id=into_id,
        from_case_closed=closed,
    )
    if not closed:
        log.warning(
            "a case opened for a referral now on another case stays open: "
            "a supervisor decides whether to close it",
            case_id=from_id,
        )
    return into_id


async def on_tip_escalated(
    session: AsyncSession, envelope: EventEnvelope, data: TipEscalated, cw: Casework
) -> str | None:
    """Open a case, led by ICAC, for a tip ICAC escalated (once per tip)."""
    repo = cw.repository(session)
    if await repo.case_id_of_origin("tip", data.tip_id) is not None:
        log.info("tip already has a case; nothing to do", tip_id=data.tip_id)
        return None
    now = cw.clock()
    try:
        case = Case.open(
            case_id=str(uuid.uuid4()),
            origin="tip",
            origin_id=data.tip_id,
            opened_at=now,
            priority=tip_case_priority(data.priority),
            province_code=data.province_code,
            concerns=tip_concerns(data.incident_type),
            teams=TIP_TEAMS,
        )
        repo.add(case, pseudonym=cw.case_pseudonym(case.case_id))
        team = initial_team(case.teams, case.child_homicide)
        if team is not None:
            case.assign(team, by=SYSTEM_USER, now=now)
    except CaseworkError as exc:
        raise _invalid(exc) from None
    publish_case_events(
        session, repo, case, case.pull_events(), cw, correlation_id=envelope.correlation_id
    )
    await repo.save(case)
    cw.metrics.cases_opened.labels("tip").inc()
    log.info("case opened from tip", case_id=case.case_id, tip_id=data.tip_id)
    return case.case_id


EvidenceEvent = (
    evidence_contract.EvidenceRegistered
    | evidence_contract.EvidenceCustodyTransferred
    | evidence_contract.EvidenceAnalysisRequested
    | evidence_contract.EvidenceAnalysisCompleted
    | evidence_contract.EvidenceDisposed
)


async def on_evidence_event(
    session: AsyncSession, envelope: EventEnvelope, data: EvidenceEvent, cw: Casework
) -> None:
    """Link a forensics event to its case: the item, its latest custody state, the timeline.

    The item's identity (type, parent, collection) is a fact: stored whatever the order. Its
    custody state is order-sensitive: applied only when ``claim_version`` says this event is
    newer than the last one applied for the item, so a replayed old transfer never overwrites
    a later one.
    """
    event_id = str(envelope.event_id)
    if await session.get(EvidenceEventRow, event_id) is not None:
        return
    code = (
        getattr(data, "kind", None)
        or getattr(data, "analysis_type", None)
        or getattr(data, "item_type", None)
    )
    at = (
        getattr(data, "registered_at", None)
        or getattr(data, "at", None)
        or getattr(data, "requested_at", None)
        or getattr(data, "completed_at", None)
    )
    session.add(
        EvidenceEventRow(
            event_id=event_id,
            item_id=data.item_id,
            case_pseudonym=data.case_id,
            event_type=data.event_type,
            code=code,
            result_code=getattr(data, "result_code", None),
            analysis_id=getattr(data, "analysis_id", None),
            at=at or envelope.occurred_at,
            ledger_index=getattr(data, "ledger_index", None),
        )
    )
    item = await session.get(EvidenceItemRow, data.item_id)
    if item is None:
        item = EvidenceItemRow(item_id=data.item_id, case_pseudonym=data.case_id, disposed=False)
        session.add(item)
    if isinstance(data, evidence_contract.EvidenceRegistered):
        item.item_type = data.item_type
        item.parent_item_id = data.parent_item_id
        item.collected_at = data.collected_at
        item.registered_at = data.registered_at
    elif isinstance(
        data,
        evidence_contract.EvidenceCustodyTransferred | evidence_contract.EvidenceDisposed,
    ) and await claim_version(
        session,
        stream="casework.evidence-custody",
        aggregate_id=envelope.aggregate_id,
        version=envelope.aggregate_version,
    ):
        item.custody_kind = data.kind
        item.custody_at = data.at
        if isinstance(data, evidence_contract.EvidenceCustodyTransferred):
            item.ledger_index = data.ledger_index
        else:
            item.disposed = True
    if await cw.repository(session).case_id_of_pseudonym(data.case_id) is None:
        log.warning(
            "evidence names a case unknown here; kept until the case is known",
            item_id=data.item_id,
            event_type=data.event_type,
        )
    cw.metrics.evidence_events.labels(data.event_type).inc()
