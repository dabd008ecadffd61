"""The analyst's work on a tip: the triage queue, claiming, and the disposition.

Rules (each refusal is a :class:`WorkflowError` naming its rule; the HTTP layer answers 409):

- The queue holds open tips (queued or claimed), by priority (P1 first), then by age (the
  oldest first), then by tip id.
- One analyst at a time: a tip claimed by someone else cannot be claimed (``tip_claimed``)
  until that claim is released or expires (``claim_ttl``, a shift by default). Claiming one's
  own tip again renews the claim.
- Only the claimant disposes (``not_the_claimant``; ``tip_not_claimed`` when nobody holds it),
  and only once (``tip_disposed``). ``duplicate`` names the original tip
  (``duplicate_needs_original``). A supervisor may release someone else's claim (``force``).
- ``escalate`` yields :class:`TipEscalated` with what casework needs to open a case and no
  personal data (tip id, priority, incident type, province, cluster id, victim count,
  youngest victim's age); every other disposition yields :class:`TipClosed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from cpu_icac.domain.priority import LEVEL_RANK, PriorityAssessment, PriorityLevel
from cpu_icac.domain.tip_report import TipReport

TipStatus = Literal["queued", "claimed", "escalated", "closed"]
Disposition = Literal["actionable", "informational", "no_jurisdiction", "duplicate", "escalate"]
DISPOSITIONS: Final[frozenset[str]] = frozenset(Disposition.__args__)  # type: ignore[attr-defined]
OPEN_STATUSES: Final = frozenset({"queued", "claimed"})
DEFAULT_CLAIM_TTL: Final = timedelta(hours=8)


class WorkflowError(Exception):
    """A workflow rule refused the action; ``rule`` is its stable name."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class EscalationSummary:
    """What casework needs to open a case from a tip: codes and counts, no personal data."""

    tip_id: str
    priority: PriorityLevel
    incident_type: str
    province_code: str | None
    cluster_id: str
    victim_count: int
    youngest_victim_age: int | None

    def as_event_data(self) -> dict[str, Any]:
        return {
            "tip_id": self.tip_id,
            "priority": self.priority,
            "incident_type": self.incident_type,
            "province_code": self.province_code,
            "cluster_id": self.cluster_id,
            "victim_count": self.victim_count,
            "youngest_victim_age": self.youngest_victim_age,
        }


@dataclass(frozen=True, slots=True)
class TipEscalated:
    """The analyst escalated the tip to casework (event ``tip.escalated``)."""

    summary: EscalationSummary
    at: datetime


@dataclass(frozen=True, slots=True)
class TipClosed:
    """The analyst closed the tip with a disposition other than escalate (``tip.closed``)."""

    tip_id: str
    disposition: Disposition
    priority: PriorityLevel
    at: datetime
    duplicate_of: str | None = None

    def as_event_data(self) -> dict[str, Any]:
        return {
            "tip_id": self.tip_id,
            "disposition": self.disposition,
            "priority": self.priority,
            "duplicate_of": self.duplicate_of,
        }


@dataclass(frozen=True, slots=True)
class TipTriage:
    """A tip as the analysts work on it: the facts triage needs, status, claim, disposition.
    Immutable: every action returns a new state."""

    tip_id: str
    priority: PriorityLevel
    received_at: datetime
    incident_type: str
    cluster_id: str
    province_code: str | None = None
    victim_count: int = 0
    youngest_victim_age: int | None = None
    status: TipStatus = "queued"
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    disposition: Disposition | None = None
    disposed_by: str | None = None
    disposed_at: datetime | None = None
    duplicate_of: str | None = None

    @classmethod
    def new(
        cls,
        *,
        tip_id: str,
        report: TipReport,
        priority: PriorityAssessment | PriorityLevel,
        received_at: datetime,
        cluster_id: str | None = None,
        province_code: str | None = None,
    ) -> TipTriage:
        """A freshly triaged tip, queued."""
        level = priority if isinstance(priority, str) else priority.level
        return cls(
            tip_id=tip_id,
            priority=level,
            received_at=received_at,
            incident_type=report.incident_type,
            cluster_id=cluster_id or tip_id,
            province_code=province_code,
            victim_count=len(report.victims),
            youngest_victim_age=report.youngest_victim_age(),
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def claim_is_live(self, now: datetime, claim_ttl: timedelta | None = DEFAULT_CLAIM_TTL) -> bool:
        if self.status != "claimed" or self.claimed_at is None:
            return False
        return claim_ttl is None or now - self.claimed_at < claim_ttl

    def escalation_summary(self) -> EscalationSummary:
        return EscalationSummary(
            tip_id=self.tip_id,
            priority=self.priority,
            incident_type=self.incident_type,
            province_code=self.province_code,
            cluster_id=self.cluster_id,
            victim_count=self.victim_count,
            youngest_victim_age=self.youngest_victim_age,
        )


def queue_key(tip: TipTriage) -> tuple[int, datetime, str]:
    """Sort key of the triage queue: priority, then the oldest first, then tip id."""
    return (LEVEL_RANK[tip.priority], tip.received_at, tip.tip_id)


def triage_queue(tips: Iterable[TipTriage]) -> list[TipTriage]:
    """Open tips in the order an analyst should take them."""
    return sorted((t for t in tips if t.is_open), key=queue_key)


def next_tip(
    tips: Iterable[TipTriage], *, now: datetime, claim_ttl: timedelta | None = DEFAULT_CLAIM_TTL
) -> TipTriage | None:
    """The first open tip nobody holds a live claim on, or None."""
    for tip in triage_queue(tips):
        if not tip.claim_is_live(now, claim_ttl):
            return tip
    return None


def _require_open(tip: TipTriage) -> None:
    if not tip.is_open:
        raise WorkflowError("tip_disposed", "the tip already has a disposition")


def claim(
    tip: TipTriage, *, analyst: str, now: datetime, claim_ttl: timedelta | None = DEFAULT_CLAIM_TTL
) -> TipTriage:
    """Take the tip (or renew one's own claim)."""
    _require_open(tip)
    if tip.claim_is_live(now, claim_ttl) and tip.claimed_by != analyst:
        raise WorkflowError("tip_claimed", "another analyst holds the tip")
    return replace(tip, status="claimed", claimed_by=analyst, claimed_at=now)


def release(tip: TipTriage, *, analyst: str, force: bool = False) -> TipTriage:
    """Give the tip back to the queue. Only the claimant, unless ``force`` (a supervisor)."""
    _require_open(tip)
    if tip.status != "claimed":
        raise WorkflowError("tip_not_claimed", "nobody holds the tip")
    if tip.claimed_by != analyst and not force:
        raise WorkflowError("not_the_claimant", "only the analyst holding the tip may release it")
    return replace(tip, status="queued", claimed_by=None, claimed_at=None)


def reprioritise(
    tip: TipTriage, priority: PriorityAssessment | PriorityLevel, *, cluster_id: str | None = None
) -> TipTriage:
    """A new priority (a new version of the report, a grown cluster); only for open tips."""
    _require_open(tip)
    level = priority if isinstance(priority, str) else priority.level
    return replace(tip, priority=level, cluster_id=cluster_id or tip.cluster_id)


def dispose(
    tip: TipTriage,
    *,
    analyst: str,
    disposition: str,
    now: datetime,
    duplicate_of: str | None = None,
) -> tuple[TipTriage, TipEscalated | TipClosed]:
    """Record the analyst's disposition; return the new state and the event to publish.
    (A claimant whose claim has expired may still dispose while nobody else took the tip.)"""
    _require_open(tip)
    if disposition not in DISPOSITIONS:
        raise WorkflowError(
            "unknown_disposition", "disposition is one of: " + ", ".join(sorted(DISPOSITIONS))
        )
    if tip.status != "claimed" or tip.claimed_by is None:
        raise WorkflowError("tip_not_claimed", "claim the tip before disposing of it")
    if tip.claimed_by != analyst:
        raise WorkflowError(
            "not_the_claimant", "only the analyst holding the tip may dispose of it"
        )
    if disposition == "duplicate":
        if not duplicate_of or duplicate_of == tip.tip_id:
            raise WorkflowError("duplicate_needs_original", "a duplicate names the original tip")
    elif duplicate_of is not None:
        raise WorkflowError("original_only_for_duplicate", "only a duplicate names an original tip")
    status: TipStatus = "escalated" if disposition == "escalate" else "closed"
    done = replace(
        tip,
        status=status,
        disposition=disposition,  # type: ignore[arg-type]
        disposed_by=analyst,
        disposed_at=now,
        duplicate_of=duplicate_of,
    )
    if disposition == "escalate":
        return done, TipEscalated(done.escalation_summary(), now)
    return done, TipClosed(tip.tip_id, disposition, tip.priority, now, duplicate_of)  # type: ignore[arg-type]
