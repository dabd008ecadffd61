"""Domain events -> the contract events of ``casework.case.events``, into the outbox.

Every id is pseudonymised here: the case (``case``), suspects (``suspect``) and officers
(``officer``, for ``changed_by`` and ``investigator_id``). Child, referral and tip ids arrive
from intake and ICAC already as pseudonyms under the same key and are passed on unchanged, so
reporting can follow one child across services. The contract models forbid extra fields, and
the domain events hold no free text, so a reason text or a suspect's details cannot reach an
event by construction.

Domain events without a contract twin (a linked referral, a suspect identified, a child added,
the child-homicide flag) are not published: they are on the case's timeline.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.adapters.repository import CaseRepository
from cpu_casework.domain import events as ev
from cpu_casework.domain.case import Case
from cpu_casework.service_layer.context import Casework
from cpu_shared.contracts import EventData, publish
from cpu_shared.contracts import casework as contract


def to_contract(event: ev.Event, case_pseudonym: str, cw: Casework) -> EventData | None:
    """The published form of a domain event, or None if it is not published."""
    match event:
        case ev.CaseOpened():
            return contract.CaseOpened(
                case_id=case_pseudonym,
                origin=event.origin,  # type: ignore[arg-type]
                origin_id=event.origin_id,
                opened_at=event.opened_at,
                referral_received_at=event.referral_received_at,
                priority=event.priority,  # type: ignore[arg-type]
                province_code=event.province_code,
                concerns=list(event.concerns),  # type: ignore[arg-type]
                teams=list(event.teams),  # type: ignore[arg-type]
                child_ids=list(event.child_ids),
                children_under_15=event.children_under_15,
            )
        case ev.CaseAssigned():
            return contract.CaseAssigned(
                case_id=case_pseudonym,
                team=event.team,  # type: ignore[arg-type]
                investigator_id=cw.officer_pseudonym(event.investigator_id)
                if event.investigator_id
                else None,
                province_code=event.province_code,
                reassignment=event.reassignment,
                reason_code=event.reason_code,
                assigned_at=event.assigned_at,
            )
        case ev.CaseStatusChanged():
            return contract.CaseStatusChanged(
                case_id=case_pseudonym,
                from_status=event.from_status,  # type: ignore[arg-type]
                to_status=event.to_status,  # type: ignore[arg-type]
                reason_code=event.reason_code,
                changed_at=event.changed_at,
                changed_by=cw.officer_pseudonym(event.changed_by),
            )
        case ev.CaseSuspectArrested():
            return contract.CaseSuspectArrested(
                case_id=case_pseudonym,
                suspect_id=cw.suspect_pseudonym(event.suspect_id),
                arrested_on=event.arrested_on,
                province_code=event.province_code,
            )
        case ev.CaseCharged():
            return contract.CaseCharged(
                case_id=case_pseudonym,
                suspect_id=cw.suspect_pseudonym(event.suspect_id),
                offence_codes=list(event.offence_codes),
                charged_on=event.charged_on,
            )
        case ev.CaseCourtOutcomeRecorded():
            return contract.CaseCourtOutcomeRecorded(
                case_id=case_pseudonym,
                suspect_id=cw.suspect_pseudonym(event.suspect_id),
                outcome=event.outcome,  # type: ignore[arg-type]
                offence_codes=list(event.offence_codes),
                sentence_months=event.sentence_months,
                decided_on=event.decided_on,
            )
        case ev.CaseVictimServiceProvided():
            return contract.CaseVictimServiceProvided(
                case_id=case_pseudonym,
                child_id=event.child_id,
                service=event.service,  # type: ignore[arg-type]
                provider_code=event.provider_code,
                provided_on=event.provided_on,
            )
        case ev.FirstContactRecorded():
            return contract.CaseFirstContactRecorded(
                case_id=case_pseudonym,
                child_id=event.child_id,
                contacted_at=event.contacted_at,
            )
        case ev.CaseClosed():
            return contract.CaseClosed(
                case_id=case_pseudonym,
                status=event.status,  # type: ignore[arg-type]
                closed_at=event.closed_at,
                child_homicide=event.child_homicide,
            )
    return None


def publish_case_events(
    session: AsyncSession,
    repo: CaseRepository,
    case: Case,
    events: list[ev.Event],
    cw: Casework,
    *,
    correlation_id: str,
) -> int:
    """Put the published form of ``events`` in the outbox, in the caller's transaction.

    Returns how many were published. Call before ``repo.save(case)``, which stores the
    case's event sequence.
    """
    case_pseudonym = repo.pseudonym_of(case)
    published = 0
    for event in events:
        data = to_contract(event, case_pseudonym, cw)
        if data is None:
            continue
        publish(
            session,
            data,
            source=cw.source,
            aggregate_id=case_pseudonym,
            aggregate_version=repo.next_event_version(case),
            correlation_id=correlation_id,
        )
        published += 1
    return published
