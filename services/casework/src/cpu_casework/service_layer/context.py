"""What every casework handler needs, built once per process: keys, policy, clock, metrics."""

from __future__ import annotations

import collections
import functools
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.adapters.repository import CaseRepository
from cpu_casework.domain.deadlines import FirstContactPolicy, FirstContactTask, overdue_counts
from cpu_casework.domain.offences import OffenceTable, default_offence_table
from cpu_casework.domain.values import TEAMS
from cpu_shared.security.crypto import FieldCipher, Keyring
from cpu_shared.security.pseudonym import Pseudonymizer

UNASSIGNED = "unassigned"


def utcnow() -> datetime:
    return datetime.now(UTC)


PRIORITIES = ("P1", "P2", "P3")


class CaseworkMetrics:
    """Business metrics. Labels are codes (team, origin), never an id or a personal value."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Named and labelled as deploy/prometheus/alerts.yml and the dashboard expect.
        self.overdue = Gauge(
            "cpu_casework_overdue_first_contact",
            "First-contact tasks past their due time with no contact recorded, per lead team "
            "and priority",
            ["team", "priority"],
            registry=registry,
        )
        for team in (*TEAMS, UNASSIGNED):
            for priority in PRIORITIES:
                self.overdue.labels(team, priority).set(0)
        self.cases_opened = Counter(
            "cpu_casework_cases_opened",
            "Cases opened, by origin (referral or tip)",
            ["origin"],
            registry=registry,
        )
        self.referrals_linked = Counter(
            "cpu_casework_referrals_linked",
            "Referrals of a child already on a case, linked to that case",
            ["case_closed"],
            registry=registry,
        )
        self.evidence_events = Counter(
            "cpu_casework_evidence_events",
            "Forensics events linked to cases",
            ["event_type"],
            registry=registry,
        )

    def set_overdue(self, tasks: list[FirstContactTask], now: datetime) -> dict[str, int]:
        counts = {team or UNASSIGNED: n for team, n in overdue_counts(tasks, now).items()}
        by_priority: collections.Counter[tuple[str, str]] = collections.Counter(
            (task.team or UNASSIGNED, task.priority) for task in tasks if task.is_overdue(now)
        )
        for team in (*TEAMS, UNASSIGNED):
            for priority in PRIORITIES:
                self.overdue.labels(team, priority).set(by_priority.get((team, priority), 0))
        return counts


class Casework:
    """The service's collaborators. Keys are loaded on first use (building the app for its
    AsyncAPI document needs none); ``clock`` is replaceable in tests."""

    def __init__(
        self,
        *,
        keys: Callable[[], Keyring],
        policy: FirstContactPolicy,
        metrics: CaseworkMetrics,
        offences: OffenceTable | None = None,
        clock: Callable[[], datetime] = utcnow,
        source: str = "casework",
    ) -> None:
        self._keys = keys
        self.policy = policy
        self.metrics = metrics
        self.offences = offences or default_offence_table()
        self.clock = clock
        self.source = source

    @functools.cached_property
    def cipher(self) -> FieldCipher:
        return self._keys().field_cipher()

    @functools.cached_property
    def pseudonyms(self) -> Pseudonymizer:
        return self._keys().pseudonymizer()  # type: ignore[no-any-return]

    def repository(self, session: AsyncSession) -> CaseRepository:
        return CaseRepository(session, self.cipher, self.policy)

    def case_pseudonym(self, case_id: str) -> str:
        return self.pseudonyms.pseudonym("case", case_id)

    def officer_pseudonym(self, user: str) -> str:
        return self.pseudonyms.pseudonym("officer", user)

    def suspect_pseudonym(self, suspect_id: str) -> str:
        return self.pseudonyms.pseudonym("suspect", suspect_id)

    def referral_pseudonym(self, referral_id: str) -> str:
        """Intake's pseudonym of its referral id: how referrals are known here."""
        return self.pseudonyms.pseudonym("referral", referral_id)
