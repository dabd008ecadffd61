"""Assigning a case to a team and an investigator in its province; reassignment with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cpu_casework.domain import events as ev
from cpu_casework.domain.assignment import (
    InvestigatorOutsideProvince,
    ReassignmentReasonRequired,
)
from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.errors import InvalidValue, ReasonRequired

OPENED = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
NOW = OPENED + timedelta(hours=1)


def open_case(province_code: str | None = "12") -> Case:
    case = Case.open(
        case_id="case-00000001",
        origin="referral",
        origin_id="referral-0001",
        opened_at=OPENED,
        priority="P1",
        province_code=province_code,
        concerns=["sexual_abuse"],
        teams=["OVCS"],
        children=[Child("child-00001", 12, "female")],
        referral_received_at=OPENED,
    )
    case.pull_events()
    return case


def test_first_assignment_needs_no_reason() -> None:
    case = open_case()
    assignment = case.assign(
        "OVCS",
        investigator_id="inv-sokha",
        investigator_province_code="12",
        by="supervisor-1",
        now=NOW,
    )
    assert assignment is not None
    assert case.current_assignment == assignment
    assert case.lead_team == "OVCS"
    assert not assignment.reassignment
    assert case.version == 2
    assert case.pull_events() == [
        ev.CaseAssigned(
            case_id=case.case_id,
            team="OVCS",
            investigator_id="inv-sokha",
            province_code="12",
            reassignment=False,
            reason_code=None,
            assigned_at=NOW,
            assigned_by="supervisor-1",
        )
    ]


def test_reassignment_without_a_reason_is_refused() -> None:
    case = open_case()
    case.assign(
        "OVCS",
        investigator_id="inv-sokha",
        investigator_province_code="12",
        by="supervisor-1",
        now=NOW,
    )
    for code in (None, ""):
        with pytest.raises(ReassignmentReasonRequired) as caught:
            case.assign(
                "OVCS",
                investigator_id="inv-dara",
                investigator_province_code="12",
                by="supervisor-1",
                now=NOW,
                reason_code=code,
                reason_text="on leave",
            )
        assert isinstance(caught.value, ReasonRequired)
    with pytest.raises(ReassignmentReasonRequired):
        case.assign("FST", by="supervisor-1", now=NOW)
    assert len(case.assignments) == 1


def test_reassignment_with_a_reason_keeps_the_history() -> None:
    case = open_case()
    first = case.assign(
        "OVCS",
        investigator_id="inv-sokha",
        investigator_province_code="12",
        by="supervisor-1",
        now=NOW,
    )
    later = NOW + timedelta(days=1)
    second = case.assign(
        "FST",
        investigator_id="inv-dara",
        investigator_province_code="12",
        by="supervisor-2",
        now=later,
        reason_code="forensic_lead",
        reason_text="The medical evidence now drives the case.",
    )
    assert second is not None
    assert case.assignments == [first, second]
    assert second.reassignment and second.reason_code == "forensic_lead"
    assert case.teams == ["OVCS", "FST"]
    event = case.pull_events()[-1]
    assert isinstance(event, ev.CaseAssigned)
    assert (event.reassignment, event.reason_code) == (True, "forensic_lead")
    assert "medical evidence" not in repr(event)


def test_the_same_assignment_again_changes_nothing() -> None:
    case = open_case()
    case.assign(
        "OVCS",
        investigator_id="inv-sokha",
        investigator_province_code="12",
        by="supervisor-1",
        now=NOW,
    )
    version = case.version
    case.pull_events()
    again = case.assign(
        "OVCS",
        investigator_id="inv-sokha",
        investigator_province_code="12",
        by="supervisor-1",
        now=NOW,
    )
    assert again is None
    assert case.version == version and case.pull_events() == []


def test_the_investigator_works_in_the_case_province() -> None:
    case = open_case("12")
    with pytest.raises(InvestigatorOutsideProvince) as caught:
        case.assign(
            "OVCS",
            investigator_id="inv-battambang",
            investigator_province_code="02",
            by="supervisor-1",
            now=NOW,
        )
    assert (caught.value.investigator_province, caught.value.case_province) == ("02", "12")
    with pytest.raises(InvalidValue):  # the province of the investigator must be given
        case.assign("OVCS", investigator_id="inv-x", by="supervisor-1", now=NOW)
    with pytest.raises(InvalidValue):
        case.assign(
            "OVCS",
            investigator_id="inv-x",
            investigator_province_code="99",
            by="supervisor-1",
            now=NOW,
        )


def test_a_case_without_a_province_takes_any_investigator() -> None:
    case = open_case(None)
    assert (
        case.assign(
            "ICAC",
            investigator_id="inv-icac",
            investigator_province_code="12",
            by="supervisor-1",
            now=NOW,
        )
        is not None
    )


def test_a_team_only_assignment_and_an_unknown_team() -> None:
    case = open_case()
    assert case.assign("HIT", by="supervisor-1", now=NOW) is not None
    with pytest.raises(InvalidValue):
        case.assign("SWAT", by="supervisor-1", now=NOW, reason_code="x_y")


def test_a_bad_reason_code_is_refused() -> None:
    case = open_case()
    case.assign("OVCS", by="supervisor-1", now=NOW)
    with pytest.raises(InvalidValue):
        case.assign("HIT", by="supervisor-1", now=NOW, reason_code="Because I said so")
