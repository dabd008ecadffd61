"""First-contact deadlines: every child on a case is to be contacted within a target time.

The clock starts when the referral that named the child was received (for a child added
later, when they were added); the target depends on the case's priority: by default 24 hours
for P1, 72 hours for P2 and 7 days for P3 (:class:`FirstContactPolicy`, which the service builds
from its settings). If a linked referral raises the case's priority, every open task takes the
tighter target.

A task is **done** once the first contact is recorded (:meth:`Case.record_first_contact`),
**cancelled** if the case was closed before anyone made contact, and **open** otherwise; an open
task is **overdue** once ``now`` is past its due time. Each task belongs to one team - the team
leading the case; before any assignment HIT for a child homicide, else the first team triage
named, else ``None`` (unassigned) - so overdue tasks are listed and counted once per team.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cpu_casework.domain.assignment import HIT
from cpu_casework.domain.case import Case
from cpu_casework.domain.errors import InvalidValue
from cpu_casework.domain.values import PRIORITIES, require_aware, require_choice

OPEN = "open"
DONE = "done"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class FirstContactPolicy:
    """Target time from referral to first contact with the child, per case priority."""

    p1: timedelta = timedelta(hours=24)
    p2: timedelta = timedelta(hours=72)
    p3: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        for name in ("p1", "p2", "p3"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                raise InvalidValue(name, "a first-contact target is a positive duration")
        if not self.p1 <= self.p2 <= self.p3:
            raise InvalidValue("p1", "targets must not loosen with urgency: P1 <= P2 <= P3")

    @classmethod
    def from_hours(cls, p1: float = 24, p2: float = 72, p3: float = 168) -> FirstContactPolicy:
        return cls(timedelta(hours=p1), timedelta(hours=p2), timedelta(hours=p3))

    def target(self, priority: str) -> timedelta:
        require_choice(priority, PRIORITIES, "priority")
        return {"P1": self.p1, "P2": self.p2, "P3": self.p3}[priority]

    def due_at(self, received_at: datetime, priority: str) -> datetime:
        return require_aware(received_at, "received_at") + self.target(priority)


DEFAULT_POLICY = FirstContactPolicy()


@dataclass(frozen=True)
class FirstContactTask:
    case_id: str
    child_id: str
    priority: str
    team: str | None
    province_code: str | None
    received_at: datetime
    due_at: datetime
    contacted_at: datetime | None
    case_closed: bool

    @property
    def status(self) -> str:
        if self.contacted_at is not None:
            return DONE
        return CANCELLED if self.case_closed else OPEN

    def is_overdue(self, now: datetime) -> bool:
        return self.status == OPEN and require_aware(now, "now") > self.due_at

    @property
    def met_target(self) -> bool | None:
        """Whether the contact came in time; None while no contact is recorded."""
        return None if self.contacted_at is None else self.contacted_at <= self.due_at


def task_team(case: Case) -> str | None:
    """The lead team; before assignment HIT for a child homicide, else triage's first team."""
    if case.lead_team is not None:
        return case.lead_team
    if case.child_homicide:
        return HIT
    return case.teams[0] if case.teams else None


def first_contact_tasks(
    case: Case, policy: FirstContactPolicy = DEFAULT_POLICY
) -> list[FirstContactTask]:
    """One task per child on the case, in the order the children joined it."""
    team = task_team(case)
    return [
        FirstContactTask(
            case_id=case.case_id,
            child_id=child.child_id,
            priority=case.priority,
            team=team,
            province_code=case.province_code,
            received_at=child.referred_at,
            due_at=policy.due_at(child.referred_at, case.priority),
            contacted_at=child.first_contact_at,
            case_closed=case.is_closed,
        )
        for child in case.children.values()
    ]


def overdue_by_team(
    tasks: Iterable[FirstContactTask], now: datetime
) -> dict[str | None, list[FirstContactTask]]:
    """Overdue tasks grouped by team, most overdue first within each team."""
    now = require_aware(now, "now")
    grouped: dict[str | None, list[FirstContactTask]] = {}
    for task in tasks:
        if task.is_overdue(now):
            grouped.setdefault(task.team, []).append(task)
    for team_tasks in grouped.values():
        team_tasks.sort(key=lambda t: (t.due_at, t.case_id, t.child_id))
    return grouped


def overdue_counts(tasks: Iterable[FirstContactTask], now: datetime) -> dict[str | None, int]:
    """How many tasks each team has overdue (the metric's values)."""
    return {team: len(items) for team, items in overdue_by_team(tasks, now).items()}


def overdue_tasks(
    cases: Iterable[Case], now: datetime, policy: FirstContactPolicy = DEFAULT_POLICY
) -> dict[str | None, list[FirstContactTask]]:
    """Overdue first-contact tasks of ``cases`` at ``now``, per team."""
    return overdue_by_team(
        (task for case in cases for task in first_contact_tasks(case, policy)), now
    )
