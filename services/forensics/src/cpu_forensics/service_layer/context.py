"""What every forensics handler needs, built once per process: the runtime, the keys (field
cipher, pseudonyms, the ledger signer), the leaf-hash cache and the service's counters."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_forensics.adapters.ledger_store import LeafHashCache, LedgerAppender
from cpu_forensics.adapters.records import Protection
from cpu_forensics.adapters.repository import EvidenceRepository
from cpu_forensics.adapters.signing import LedgerSigner, build_signer
from cpu_forensics.config import ForensicsSettings
from cpu_shared.security.pseudonym import Pseudonymizer
from cpu_shared.service import ServiceRuntime


class Metrics:
    """Business counters: codes only, never an id or a name in a label."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.custody_events = Counter(
            "cpu_forensics_custody_events",
            "Custody events appended to the ledger, by kind",
            ["kind"],
            registry=registry,
        )
        self.refusals = Counter(
            "cpu_forensics_refusals",
            "Requests refused by a custody or analysis rule, by rule",
            ["rule"],
            registry=registry,
        )
        self.ledger_size = Gauge(
            "cpu_forensics_ledger_size", "Entries in the custody ledger", registry=registry
        )
        self.append_seconds = Histogram(
            "cpu_forensics_append_seconds",
            "Time to record one custody step (lock, checks, leaf, signed head, commit)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.verifications = Counter(
            "cpu_forensics_ledger_verifications",
            "Runs of the ledger verification, by outcome",
            ["outcome"],
            registry=registry,
        )


class Forensics:
    """The service's handlers' context."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        settings: ForensicsSettings,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.metrics = Metrics(runtime.registry)
        self.hash_cache = LeafHashCache()
        #: The service's clock (tests move it): every instant a handler records comes from it.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        return self.clock()

    @functools.cached_property
    def protection(self) -> Protection:
        return Protection(self.runtime.keyring.field_cipher())

    @functools.cached_property
    def pseudonyms(self) -> Pseudonymizer:
        return self.runtime.keyring.pseudonymizer()

    @functools.cached_property
    def signer(self) -> LedgerSigner:
        # Loaded on first use (a dev key file is created then), not when the app is built:
        # building the app for its AsyncAPI document must not write key files.
        return build_signer(self.settings)

    @functools.cached_property
    def appender(self) -> LedgerAppender:
        return LedgerAppender(self.protection, self.signer)

    def repository(self, session: AsyncSession) -> EvidenceRepository:
        return EvidenceRepository(session, self.protection)

    # Pseudonymous ids for events (the kinds casework and reporting use too).
    def item_pseudonym(self, item_id: str) -> str:
        return self.pseudonyms.pseudonym("evidence", item_id)

    def case_pseudonym(self, case_id: str) -> str:
        return self.pseudonyms.pseudonym("case", case_id)

    def analysis_pseudonym(self, analysis_id: str) -> str:
        return self.pseudonyms.pseudonym("analysis", analysis_id)
