"""Domain events become contract events with pseudonymous ids and codes only."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import get_args

from prometheus_client import CollectorRegistry

from cpu_casework.domain import events as ev
from cpu_casework.domain.deadlines import FirstContactPolicy
from cpu_casework.service_layer.context import Casework, CaseworkMetrics
from cpu_casework.service_layer.publishing import to_contract
from cpu_shared.contracts import EVENT_CATALOGUE, personal_fields_in
from cpu_shared.contracts.casework import (
    CaseAssigned,
    CaseFirstContactRecorded,
    CaseStatusChanged,
)
from cpu_shared.contracts.codes import CaseStatus
from cpu_shared.security.pseudonym import Pseudonymizer

NOW = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
CASE_PS = "ps_" + "a" * 26


class _Keys:
    def pseudonymizer(self) -> Pseudonymizer:
        return Pseudonymizer(b"k" * 32)


def casework() -> Casework:
    return Casework(
        keys=lambda: _Keys(),  # type: ignore[arg-type,return-value]
        policy=FirstContactPolicy(),
        metrics=CaseworkMetrics(CollectorRegistry()),
    )


def test_officers_and_suspects_are_pseudonymised() -> None:
    cw = casework()
    assigned = to_contract(
        ev.CaseAssigned(
            case_id="internal-case",
            team="HIT",
            investigator_id="officer.sokha",
            province_code="12",
            reassignment=True,
            reason_code="workload",
            assigned_at=NOW,
            assigned_by="sup.dara",
        ),
        CASE_PS,
        cw,
    )
    assert isinstance(assigned, CaseAssigned)
    assert assigned.case_id == CASE_PS
    assert assigned.investigator_id == cw.officer_pseudonym("officer.sokha")
    changed = to_contract(
        ev.CaseStatusChanged(
            case_id="internal-case",
            from_status="open",
            to_status="under_investigation",
            reason_code="started",
            changed_at=NOW,
            changed_by="officer.sokha",
        ),
        CASE_PS,
        cw,
    )
    assert isinstance(changed, CaseStatusChanged)
    arrested = to_contract(
        ev.CaseSuspectArrested(
            case_id="c", suspect_id="suspect-uuid", arrested_on=date(2025, 6, 1), province_code="12"
        ),
        CASE_PS,
        cw,
    )
    text = json.dumps([m.model_dump(mode="json") for m in (assigned, changed, arrested)])
    for internal in ("internal-case", "officer.sokha", "sup.dara", "suspect-uuid"):
        assert internal not in text


def test_a_first_contact_is_published_with_the_childs_pseudonym() -> None:
    child = "ps_" + "c" * 26
    data = to_contract(ev.FirstContactRecorded("c", child, NOW), CASE_PS, casework())
    assert isinstance(data, CaseFirstContactRecorded)
    assert (data.case_id, data.child_id, data.contacted_at) == (CASE_PS, child, NOW)


def test_events_without_a_contract_twin_are_not_published() -> None:
    cw = casework()
    for event in (
        ev.ReferralLinked("c", "r", NOW, (), (), "P1", False),
        ev.SuspectIdentified("c", "s", NOW),
        ev.ChildHomicideFlagged("c", NOW, True),
        ev.ChildAdded("c", "child", NOW),
    ):
        assert to_contract(event, CASE_PS, cw) is None


def test_no_casework_contract_has_a_personal_field() -> None:
    models = [m for m in EVENT_CATALOGUE.values() if m.topic.name == "casework.case.events"]
    assert len(models) >= 9
    for model in models:
        assert not list(personal_fields_in(model)), model
    assert "reopened" in get_args(CaseStatus)
