"""Read models of a case: its detail and its timeline, built from the aggregate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cpu_casework.adapters.repository import aware
from cpu_casework.adapters.schemas import (
    ArrestPublic,
    AssignmentPublic,
    CaseDetail,
    CaseSummary,
    ChargePublic,
    ChildPublic,
    CourtOutcomePublic,
    EvidencePublic,
    FirstContactPublic,
    SuspectDetails,
    SuspectPublic,
    TimelineEntry,
    TransitionPublic,
    VictimServicePublic,
)
from cpu_casework.adapters.tables import CaseRow, EvidenceEventRow, EvidenceItemRow
from cpu_casework.domain.case import Case
from cpu_casework.domain.deadlines import FirstContactPolicy, first_contact_tasks
from cpu_shared.security.crypto import FieldCipher, field_context

SUSPECT_TABLE = "case_suspects"
SUSPECT_COLUMN = "details_enc"


def seal_suspect(cipher: FieldCipher, suspect_id: str, details: SuspectDetails) -> str:
    """Encrypt a suspect's details for their row (bound to ``case_suspects.details_enc#id``)."""
    return cipher.encrypt_json(
        details.model_dump(mode="json", exclude_none=True),
        context=field_context(SUSPECT_TABLE, SUSPECT_COLUMN, suspect_id),
    )


def open_suspect(cipher: FieldCipher, suspect_id: str, token: str) -> SuspectDetails:
    return SuspectDetails.model_validate(
        cipher.decrypt_json(token, context=field_context(SUSPECT_TABLE, SUSPECT_COLUMN, suspect_id))
    )


def summary(row: CaseRow, referral_ids: list[str]) -> CaseSummary:
    return CaseSummary(
        id=row.id,
        origin=row.origin,
        origin_id=row.origin_id,
        status=row.status,
        priority=row.priority,
        province_code=row.province_code,
        lead_team=row.lead_team,
        investigator_id=row.investigator_id,
        teams=list(row.teams),
        concerns=list(row.concerns),
        child_homicide=row.child_homicide,
        opened_at=aware(row.opened_at),  # type: ignore[arg-type]
        referral_ids=referral_ids,
    )


def case_detail(
    case: Case,
    *,
    policy: FirstContactPolicy,
    now: datetime,
    evidence_items: list[EvidenceItemRow],
    evidence_events: list[EvidenceEventRow],
    suspect_details: dict[str, SuspectDetails] | None,
) -> CaseDetail:
    """The case as an officer sees it. ``suspect_details`` is None unless the reader may see
    suspects' details (the caller decrypts, and audits, exactly those)."""
    current = case.current_assignment
    tasks = {task.child_id: task for task in first_contact_tasks(case, policy)}
    children = [
        ChildPublic(
            child_id=child.child_id,
            age_years=child.age_years,
            sex=child.sex,
            referred_at=child.referred_at,
            referral_id=child.referral_id,
            first_contact_at=child.first_contact_at,
            first_contact_by=child.first_contact_by,
            first_contact=FirstContactPublic(
                due_at=tasks[child.child_id].due_at,
                status=tasks[child.child_id].status,  # type: ignore[arg-type]
                overdue=tasks[child.child_id].is_overdue(now),
                met_target=tasks[child.child_id].met_target,
            ),
        )
        for child in case.children.values()
    ]
    return CaseDetail(
        id=case.case_id,
        origin=case.origin,
        origin_id=case.origin_id,
        status=case.status,
        priority=case.priority,
        province_code=case.province_code,
        lead_team=case.lead_team,
        investigator_id=current.investigator_id if current else None,
        teams=list(case.teams),
        concerns=list(case.concerns),
        child_homicide=case.child_homicide,
        opened_at=case.opened_at,
        referral_ids=case.referral_ids,
        referral_received_at=case.referral_received_at,
        version=case.version,
        cycle=case.cycle,
        needs_hit_assignment=case.needs_hit_assignment,
        allowed_transitions=case.allowed_transitions(),
        children=children,
        assignments=[AssignmentPublic.model_validate(a) for a in case.assignments],
        transitions=[TransitionPublic.model_validate(t) for t in case.transitions],
        suspects=[
            SuspectPublic(
                suspect_id=s.suspect_id,
                identified_at=s.identified_at,
                identified_by=s.identified_by,
                details=(suspect_details or {}).get(s.suspect_id),
            )
            for s in case.suspects.values()
        ],
        arrests=[ArrestPublic.model_validate(a) for a in case.arrests],
        charges=[ChargePublic.model_validate(c) for c in case.charges],
        court_outcomes=[CourtOutcomePublic.model_validate(o) for o in case.court_outcomes],
        victim_services=[VictimServicePublic.model_validate(v) for v in case.victim_services],
        evidence=[
            EvidencePublic(
                item_id=i.item_id,
                item_type=i.item_type,
                parent_item_id=i.parent_item_id,
                collected_at=aware(i.collected_at),
                registered_at=aware(i.registered_at),
                custody_kind=i.custody_kind,
                custody_at=aware(i.custody_at),
                ledger_index=i.ledger_index,
                disposed=i.disposed,
            )
            for i in evidence_items
        ],
        timeline=timeline(case, evidence_events),
    )


def timeline(case: Case, evidence_events: list[EvidenceEventRow]) -> list[TimelineEntry]:
    """Everything that happened to the case, oldest first."""
    entries: list[TimelineEntry] = [
        TimelineEntry(
            at=case.opened_at,
            kind="opened",
            by="casework",
            codes={"origin": case.origin, "origin_id": case.origin_id},
        )
    ]
    add = entries.append
    for link in case.linked_referrals:
        add(
            TimelineEntry(
                at=link.linked_at,
                kind="referral_linked",
                by=link.linked_by,
                codes={"referral_id": link.referral_id},
            )
        )
    for a in case.assignments:
        codes: dict[str, Any] = {"team": a.team, "reassignment": a.reassignment}
        if a.investigator_id:
            codes["investigator_id"] = a.investigator_id
        if a.reason_code:
            codes["reason_code"] = a.reason_code
        add(
            TimelineEntry(
                at=a.assigned_at, kind="assigned", by=a.assigned_by, codes=codes, text=a.reason_text
            )
        )
    for t in case.transitions:
        add(
            TimelineEntry(
                at=t.at,
                kind="status_changed",
                by=t.by,
                codes={"from": t.from_status, "to": t.to_status, "reason_code": t.reason_code},
                text=t.reason_text,
            )
        )
    for s in case.suspects.values():
        add(
            TimelineEntry(
                at=s.identified_at,
                kind="suspect_identified",
                by=s.identified_by,
                codes={"suspect_id": s.suspect_id},
            )
        )
    for r in case.arrests:
        add(
            TimelineEntry(
                at=r.recorded_at,
                kind="arrest",
                by=r.recorded_by,
                codes={"suspect_id": r.suspect_id, "on": r.arrested_on.isoformat()},
            )
        )
    for c in case.charges:
        add(
            TimelineEntry(
                at=c.recorded_at,
                kind="charge",
                by=c.recorded_by,
                codes={
                    "suspect_id": c.suspect_id,
                    "offence_codes": list(c.offence_codes),
                    "on": c.charged_on.isoformat(),
                },
            )
        )
    for o in case.court_outcomes:
        add(
            TimelineEntry(
                at=o.recorded_at,
                kind="court_outcome",
                by=o.recorded_by,
                codes={
                    "suspect_id": o.suspect_id,
                    "outcome": o.outcome,
                    "sentence_months": o.sentence_months,
                    "on": o.decided_on.isoformat(),
                },
            )
        )
    for v in case.victim_services:
        add(
            TimelineEntry(
                at=v.recorded_at,
                kind="victim_service",
                by=v.recorded_by,
                codes={
                    "child_id": v.child_id,
                    "service": v.service,
                    "provider_code": v.provider_code,
                    "on": v.provided_on.isoformat(),
                },
            )
        )
    for child in case.children.values():
        if child.first_contact_at is not None:
            add(
                TimelineEntry(
                    at=child.first_contact_at,
                    kind="first_contact",
                    by=child.first_contact_by,
                    codes={"child_id": child.child_id},
                )
            )
    for e in evidence_events:
        codes = {"item_id": e.item_id, "event_type": e.event_type}
        if e.code:
            codes["code"] = e.code
        if e.result_code:
            codes["result_code"] = e.result_code
        add(TimelineEntry(at=aware(e.at), kind="evidence", codes=codes))  # type: ignore[arg-type]
    entries.sort(key=lambda entry: entry.at)
    return entries
