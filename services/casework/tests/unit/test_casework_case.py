"""Opening a case, linking further referrals, and the child-homicide flag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cpu_casework.domain import events as ev
from cpu_casework.domain.assignment import ChildHomicideRequiresHIT
from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.errors import InvalidValue
from cpu_casework.domain.outcomes import is_child_homicide

RECEIVED = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)
OPENED = RECEIVED + timedelta(minutes=5)
NOW = OPENED + timedelta(hours=2)


def open_case(**overrides: object) -> Case:
    fields: dict[str, object] = {
        "case_id": "case-00000001",
        "origin": "referral",
        "origin_id": "referral-0001",
        "opened_at": OPENED,
        "priority": "P2",
        "province_code": "12",
        "concerns": ["physical_abuse"],
        "teams": ["OVCS"],
        "children": [Child("child-00001", 12, "female")],
        "referral_received_at": RECEIVED,
    }
    fields.update(overrides)
    return Case.open(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- opening


def test_opening_from_a_referral_records_case_opened() -> None:
    case = open_case(children=[Child("child-00001", 12, "female"), Child("child-00002", 16)])

    assert (case.status, case.version, case.cycle) == ("open", 1, 1)
    assert case.referral_ids == ["referral-0001"]
    assert case.children["child-00002"].sex == "unknown"
    assert case.children["child-00001"].referred_at == RECEIVED
    assert case.pull_events() == [
        ev.CaseOpened(
            case_id="case-00000001",
            origin="referral",
            origin_id="referral-0001",
            opened_at=OPENED,
            referral_received_at=RECEIVED,
            priority="P2",
            province_code="12",
            concerns=("physical_abuse",),
            teams=("OVCS",),
            child_ids=("child-00001", "child-00002"),
            children_under_15=1,
            child_homicide=False,
        )
    ]
    assert case.pull_events() == []


def test_opening_from_a_tip_needs_no_children_nor_province() -> None:
    case = open_case(
        origin="tip",
        origin_id="tip-00000042",
        province_code=None,
        children=[],
        referral_received_at=None,
        concerns=["online_exploitation"],
        teams=["ICAC"],
    )
    assert case.origin == "tip"
    assert case.referral_ids == []
    assert case.children == {}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("origin", "hotline"),
        ("priority", "P0"),
        ("province_code", "26"),
        ("province_code", "1"),
        ("concerns", ["witchcraft"]),
        ("teams", ["SWAT"]),
        ("opened_at", datetime(2025, 3, 10, 1, 0)),  # naive
        ("referral_received_at", None),  # a referral always has one
        ("case_id", ""),
        ("children", [Child("child-00001"), Child("child-00001")]),
    ],
)
def test_opening_refuses_bad_values(field: str, value: object) -> None:
    with pytest.raises(InvalidValue):
        open_case(**{field: value})


@pytest.mark.parametrize("age", [-1, 18, 40, True, "12"])
def test_a_child_is_under_18(age: object) -> None:
    with pytest.raises(InvalidValue):
        Child("child-00001", age)  # type: ignore[arg-type]


def test_concerns_and_teams_are_deduplicated_in_order() -> None:
    case = open_case(concerns=["rape", "sexual_abuse", "rape"], teams=["FST", "OVCS", "FST"])
    assert case.concerns == ["rape", "sexual_abuse"]
    assert case.teams == ["FST", "OVCS"]


# --------------------------------------------------------------------------- linking


def test_linking_a_further_referral_adds_children_concerns_and_raises_priority() -> None:
    case = open_case()
    case.pull_events()
    later = RECEIVED + timedelta(days=2)

    linked = case.link_referral(
        referral_id="referral-0002",
        received_at=later,
        priority="P1",
        concerns=["physical_abuse", "neglect"],
        children=[Child("child-00001", 13), Child("child-00003", 6, "male")],
        teams=["HIT"],
        now=NOW,
    )

    assert linked is True
    assert case.referral_ids == ["referral-0001", "referral-0002"]
    assert list(case.children) == ["child-00001", "child-00003"]
    assert case.children["child-00001"].age_years == 13
    assert case.children["child-00001"].referred_at == RECEIVED  # clock from first referral
    assert case.children["child-00003"].referred_at == later
    assert case.concerns == ["physical_abuse", "neglect"]
    assert case.teams == ["OVCS", "HIT"]
    assert case.priority == "P1"
    assert case.version == 2
    assert case.pull_events() == [
        ev.ReferralLinked(
            case_id=case.case_id,
            referral_id="referral-0002",
            linked_at=NOW,
            new_child_ids=("child-00003",),
            new_concerns=("neglect",),
            priority="P1",
            priority_raised=True,
        )
    ]


def test_linking_is_idempotent() -> None:
    case = open_case()
    kwargs = {
        "referral_id": "referral-0002",
        "received_at": RECEIVED,
        "priority": "P3",
        "children": [Child("child-00001")],
        "now": NOW,
    }
    assert case.link_referral(**kwargs) is True  # type: ignore[arg-type]
    version = case.version
    case.pull_events()

    assert case.link_referral(**kwargs) is False  # type: ignore[arg-type]
    assert case.link_referral(**{**kwargs, "referral_id": "referral-0001"}) is False  # type: ignore[arg-type]
    assert case.version == version
    assert case.pull_events() == []
    assert case.priority == "P2"  # a less urgent referral never lowers it


def test_a_closed_case_still_takes_a_linked_referral() -> None:
    case = open_case()
    case.transition(
        "closed_unfounded",
        by="supervisor-1",
        now=NOW,
        reason_code="no_abuse",
        reason_text="checked",
    )
    assert (
        case.link_referral(referral_id="referral-0002", received_at=NOW, priority="P2", now=NOW)
        is True
    )
    assert case.status == "closed_unfounded"


def test_adding_a_child_identified_later() -> None:
    case = open_case(origin="tip", origin_id="tip-00000042", children=[], referral_received_at=None)
    case.pull_events()
    assert case.add_child(Child("child-00009", 10), referred_at=NOW, by="icac-1", now=NOW)
    assert not case.add_child(Child("child-00009", 10), referred_at=NOW, by="icac-1", now=NOW)
    assert [type(e) for e in case.pull_events()] == [ev.ChildAdded]


# --------------------------------------------------------------------------- child homicide


@pytest.mark.parametrize(
    ("concerns", "ages", "expected"),
    [
        (["homicide"], [14], True),
        (["homicide", "physical_abuse"], [17, 3], True),
        (["homicide"], [0], True),
        (["homicide"], [15], False),
        (["homicide"], [None], False),
        (["homicide"], [], False),
        (["physical_abuse"], [5], False),
    ],
)
def test_child_homicide_rule(concerns: list[str], ages: list[int | None], expected: bool) -> None:
    assert is_child_homicide(concerns, ages) is expected


def test_a_homicide_of_a_child_under_15_is_flagged_and_hit_joins() -> None:
    case = open_case(
        concerns=["homicide"], teams=["OVCS"], children=[Child("child-00001", 9, "male")]
    )
    assert case.child_homicide is True
    assert case.teams == ["OVCS", "HIT"]
    assert case.needs_hit_assignment
    events = case.pull_events()
    assert events[0].child_homicide is True  # type: ignore[attr-defined]
    assert isinstance(events[1], ev.ChildHomicideFlagged)


def test_a_child_homicide_case_is_led_by_hit() -> None:
    case = open_case(concerns=["homicide"], children=[Child("child-00001", 9)])
    with pytest.raises(ChildHomicideRequiresHIT):
        case.assign(
            "OVCS",
            investigator_id="inv-1",
            investigator_province_code="12",
            by="supervisor-1",
            now=NOW,
        )
    case.assign(
        "HIT",
        investigator_id="inv-hit",
        investigator_province_code="12",
        by="supervisor-1",
        now=NOW,
    )
    assert not case.needs_hit_assignment


def test_a_homicide_of_a_15_year_old_is_not_a_child_homicide() -> None:
    case = open_case(concerns=["homicide"], children=[Child("child-00001", 15)])
    assert case.child_homicide is False
    case.assign("OVCS", by="supervisor-1", now=NOW)


def test_the_flag_is_set_when_a_linked_referral_brings_the_facts() -> None:
    case = open_case(concerns=["physical_abuse"], children=[Child("child-00001", None)])
    case.assign("OVCS", by="supervisor-1", now=NOW)
    case.pull_events()
    case.link_referral(
        referral_id="referral-0002",
        received_at=NOW,
        priority="P1",
        concerns=["homicide"],
        children=[Child("child-00001", 11)],
        now=NOW,
    )
    assert case.child_homicide is True
    assert case.needs_hit_assignment  # OVCS still leads: a supervisor must reassign
    flagged = [e for e in case.pull_events() if isinstance(e, ev.ChildHomicideFlagged)]
    assert flagged == [
        ev.ChildHomicideFlagged(case_id=case.case_id, flagged_at=NOW, assigned_to_hit=False)
    ]


def test_the_flag_travels_on_case_closed() -> None:
    case = open_case(concerns=["homicide"], children=[Child("child-00001", 4)])
    case.transition(
        "closed_transferred",
        by="supervisor-1",
        now=NOW,
        reason_code="transferred_to_provincial_police",
        reason_text="jurisdiction",
    )
    closed = [e for e in case.pull_events() if isinstance(e, ev.CaseClosed)]
    assert closed[0].child_homicide is True
