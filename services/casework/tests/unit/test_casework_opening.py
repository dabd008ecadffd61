"""How a case starts (lead team, tip priority and concerns) and the same-child closure rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.errors import InvalidValue
from cpu_casework.domain.opening import (
    SAME_CHILD_REASON,
    close_as_same_child,
    hit_takes_over,
    initial_team,
    tip_case_priority,
    tip_concerns,
)
from cpu_shared.contracts.codes import IncidentType

NOW = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)


def a_case(**overrides: object) -> Case:
    fields: dict[str, object] = {
        "case_id": "case-1",
        "origin": "referral",
        "origin_id": "ps_referral000000000000000000",
        "opened_at": NOW,
        "priority": "P1",
        "province_code": "12",
        "concerns": ["physical_abuse"],
        "teams": ["OVCS"],
        "children": [Child("ps_child0000000000000000000001", 9)],
        "referral_received_at": NOW - timedelta(minutes=3),
    }
    fields.update(overrides)
    case = Case.open(**fields)  # type: ignore[arg-type]
    case.pull_events()
    return case


def test_the_first_team_triage_named_leads_unless_it_is_a_child_homicide() -> None:
    assert initial_team(["ICAC", "OVCS"], child_homicide=False) == "ICAC"
    assert initial_team(["OVCS"], child_homicide=True) == "HIT"
    assert initial_team([], child_homicide=False) is None


def test_tip_priorities_and_concerns() -> None:
    assert [tip_case_priority(p) for p in ("P1", "P2", "P3", "informational")] == [
        "P1",
        "P2",
        "P3",
        "P3",
    ]
    with pytest.raises(InvalidValue):
        tip_case_priority("E")
    for incident in get_args(IncidentType):
        assert "online_exploitation" in tip_concerns(incident)
    assert tip_concerns("child_sex_trafficking")[0] == "trafficking"


def test_an_untouched_case_closes_as_transferred_to_the_childs_case() -> None:
    case = a_case()
    assert close_as_same_child(
        case, continued_on="case-2", referral_id="ps_r2", same_as="ps_r1", now=NOW
    )
    assert case.status == "closed_transferred"
    assert case.transitions[-1].reason_code == SAME_CHILD_REASON
    assert "case-2" in (case.transitions[-1].reason_text or "")
    assert [type(e).__name__ for e in case.pull_events()] == ["CaseStatusChanged", "CaseClosed"]


def test_a_case_with_work_on_it_is_left_to_a_supervisor() -> None:
    started = a_case()
    started.assign("OVCS", by="sup", now=NOW)
    started.transition("under_investigation", by="inv", now=NOW, reason_code="started")
    contacted = a_case()
    contacted.record_first_contact(
        "ps_child0000000000000000000001", contacted_at=NOW, by="vs", now=NOW
    )
    for case in (started, contacted):
        status = case.status
        assert not close_as_same_child(
            case, continued_on="case-2", referral_id="r2", same_as="r1", now=NOW
        )
        assert case.status == status


def test_a_case_found_to_be_a_child_homicide_is_reassigned_to_hit() -> None:
    case = a_case()
    case.assign("OVCS", by="casework", now=NOW)
    case.link_referral(
        referral_id="ps_referral000000000000000002",
        received_at=NOW,
        priority="P1",
        now=NOW,
        concerns=["homicide"],
    )
    assert case.needs_hit_assignment
    assert hit_takes_over(case, now=NOW)
    assert case.lead_team == "HIT" and case.current_assignment.reason_code == "child_homicide"
    assert not hit_takes_over(case, now=NOW)
