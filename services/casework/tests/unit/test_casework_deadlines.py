"""First-contact deadlines: due times, closing a task, overdue lists per team."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cpu_casework.domain import events as ev
from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.deadlines import (
    CANCELLED,
    DEFAULT_POLICY,
    DONE,
    OPEN,
    FirstContactPolicy,
    first_contact_tasks,
    overdue_by_team,
    overdue_counts,
    overdue_tasks,
)
from cpu_casework.domain.errors import DuplicateRecord, InvalidValue

RECEIVED = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)
OPENED = RECEIVED + timedelta(minutes=10)


def open_case(
    case_id: str = "case-00000001",
    priority: str = "P1",
    teams: tuple[str, ...] = ("OVCS",),
    received: datetime = RECEIVED,
    children: tuple[str, ...] = ("child-00001",),
) -> Case:
    case = Case.open(
        case_id=case_id,
        origin="referral",
        origin_id=f"ref-{case_id}",
        opened_at=received + timedelta(minutes=10),
        priority=priority,
        province_code="12",
        concerns=["sexual_abuse"],
        teams=list(teams),
        children=[Child(child_id, 10) for child_id in children],
        referral_received_at=received,
    )
    case.pull_events()
    return case


@pytest.mark.parametrize(("priority", "hours"), [("P1", 24), ("P2", 72), ("P3", 168)])
def test_default_targets(priority: str, hours: int) -> None:
    assert DEFAULT_POLICY.target(priority) == timedelta(hours=hours)
    assert DEFAULT_POLICY.due_at(RECEIVED, priority) == RECEIVED + timedelta(hours=hours)


def test_targets_are_configurable() -> None:
    policy = FirstContactPolicy.from_hours(p1=12, p2=48, p3=120)
    (task,) = first_contact_tasks(open_case(priority="P2"), policy)
    assert task.due_at == RECEIVED + timedelta(hours=48)


@pytest.mark.parametrize(
    "policy",
    [
        {"p1": timedelta(0)},
        {"p1": timedelta(hours=-1)},
        {"p1": timedelta(hours=80)},  # looser than P2
        {"p2": timedelta(days=8)},  # looser than P3
    ],
)
def test_a_policy_must_be_positive_and_tighter_for_urgent_cases(policy: dict) -> None:
    with pytest.raises(InvalidValue):
        FirstContactPolicy(**policy)


def test_one_task_per_child_from_the_referral_received_time() -> None:
    case = open_case(children=("child-00001", "child-00002"))
    tasks = first_contact_tasks(case)
    assert [t.child_id for t in tasks] == ["child-00001", "child-00002"]
    assert all(t.due_at == RECEIVED + timedelta(hours=24) for t in tasks)
    assert all(t.status == OPEN and t.team == "OVCS" for t in tasks)


def test_a_task_becomes_overdue_after_its_due_time() -> None:
    case = open_case()
    due = RECEIVED + timedelta(hours=24)
    (task,) = first_contact_tasks(case)
    assert not task.is_overdue(due)
    assert task.is_overdue(due + timedelta(seconds=1))


def test_recording_first_contact_closes_the_task() -> None:
    case = open_case()
    contact = RECEIVED + timedelta(hours=30)
    now = contact + timedelta(minutes=5)
    assert case.record_first_contact("child-00001", contacted_at=contact, by="ovcs-1", now=now)
    assert case.pull_events() == [
        ev.FirstContactRecorded(case_id=case.case_id, child_id="child-00001", contacted_at=contact)
    ]
    (task,) = first_contact_tasks(case)
    assert task.status == DONE
    assert task.met_target is False  # 30 h for a P1 child: late, and the record says so
    assert not task.is_overdue(now + timedelta(days=10))
    # The same contact again is a retry; a different one contradicts the record.
    assert not case.record_first_contact("child-00001", contacted_at=contact, by="ovcs-1", now=now)
    with pytest.raises(DuplicateRecord):
        case.record_first_contact(
            "child-00001",
            contacted_at=contact + timedelta(hours=1),
            by="ovcs-1",
            now=now + timedelta(hours=2),
        )


def test_first_contact_is_not_in_the_future() -> None:
    case = open_case()
    with pytest.raises(InvalidValue):
        case.record_first_contact(
            "child-00001",
            contacted_at=OPENED + timedelta(hours=2),
            by="ovcs-1",
            now=OPENED + timedelta(hours=1),
        )


def test_closing_the_case_cancels_open_tasks() -> None:
    case = open_case()
    case.transition(
        "closed_transferred",
        by="supervisor-1",
        now=OPENED,
        reason_code="transferred_to_municipal_police",
        reason_text="jurisdiction",
    )
    (task,) = first_contact_tasks(case)
    assert task.status == CANCELLED
    assert not task.is_overdue(RECEIVED + timedelta(days=30))


def test_a_more_urgent_linked_referral_tightens_the_deadline() -> None:
    case = open_case(priority="P3")
    assert first_contact_tasks(case)[0].due_at == RECEIVED + timedelta(days=7)
    case.link_referral(
        referral_id="ref-0002",
        received_at=RECEIVED + timedelta(hours=2),
        priority="P1",
        children=[Child("child-00002", 8)],
        now=RECEIVED + timedelta(hours=3),
    )
    first, second = first_contact_tasks(case)
    assert first.due_at == RECEIVED + timedelta(hours=24)
    assert second.due_at == RECEIVED + timedelta(hours=26)


def test_overdue_tasks_are_listed_per_team() -> None:
    now = RECEIVED + timedelta(days=4)
    ovcs_old = open_case("case-00000001", "P1", ("OVCS",), RECEIVED)
    ovcs_new = open_case("case-00000002", "P1", ("OVCS",), RECEIVED + timedelta(days=1))
    hit = open_case("case-00000003", "P2", ("OVCS",), RECEIVED)
    hit.assign("HIT", by="supervisor-1", now=OPENED)
    not_yet = open_case("case-00000004", "P3", ("OVCS",), RECEIVED)  # due in 7 days
    contacted = open_case("case-00000005", "P1", ("OVCS",), RECEIVED)
    contacted.record_first_contact(
        "child-00001",
        contacted_at=RECEIVED + timedelta(hours=3),
        by="ovcs-1",
        now=RECEIVED + timedelta(hours=4),
    )
    unassigned = open_case("case-00000006", "P1", (), RECEIVED)

    overdue = overdue_tasks([ovcs_new, hit, not_yet, ovcs_old, contacted, unassigned], now)

    assert {team: [t.case_id for t in tasks] for team, tasks in overdue.items()} == {
        "OVCS": ["case-00000001", "case-00000002"],  # most overdue first
        "HIT": ["case-00000003"],
        None: ["case-00000006"],
    }
    tasks = [
        t for c in (ovcs_old, ovcs_new, hit, not_yet, contacted) for t in first_contact_tasks(c)
    ]
    assert overdue_counts(tasks, now) == {"OVCS": 2, "HIT": 1}
    assert overdue_by_team(tasks, RECEIVED) == {}


def test_a_child_homicide_task_belongs_to_hit_before_assignment() -> None:
    case = Case.open(
        case_id="case-00000009",
        origin="referral",
        origin_id="ref-9",
        opened_at=OPENED,
        priority="P1",
        province_code="12",
        concerns=["homicide"],
        teams=["OVCS"],
        children=[Child("child-00001", 6)],
        referral_received_at=RECEIVED,
    )
    (task,) = first_contact_tasks(case)
    assert task.team == "HIT"
