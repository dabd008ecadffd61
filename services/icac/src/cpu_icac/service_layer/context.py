"""What every icac handler needs, built once per process: keys, enrichment, the known-hash
index, the priority rules, the clock and the business metrics."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cpu_icac.adapters.geoip import GeoIpLocator
from cpu_icac.config import IcacSettings
from cpu_icac.domain.linking import IdentifierKind
from cpu_icac.domain.priority import DEFAULT_RULES, PriorityRules
from cpu_icac.service_layer.hash_sets import HashSetCache
from cpu_shared.logging import get_logger
from cpu_shared.security.crypto import FieldCipher, Keyring
from cpu_shared.security.pseudonym import Pseudonymizer

log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class IcacMetrics:
    """Business counters. Labels are codes (channel, outcome, level), never an id or value."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reports = Counter(
            "cpu_icac_reports",
            "Tip reports handled, by channel (kafka, api, import) and outcome "
            "(created, updated, unchanged, rejected)",
            ["channel", "outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "cpu_icac_reports_rejected",
            "Tip reports refused, by channel and rejection code",
            ["channel", "code"],
            registry=registry,
        )
        self.triaged = Counter(
            "cpu_icac_tips_triaged",
            "Priorities given (new tips, new versions, re-assessments), by level",
            ["priority"],
            registry=registry,
        )
        self.files_refused = Counter(
            "cpu_icac_files_refused",
            "Import files and hash-set uploads refused whole, by code",
            ["kind", "code"],
            registry=registry,
        )
        self.dispositions = Counter(
            "cpu_icac_dispositions",
            "Analyst dispositions, by disposition",
            ["disposition"],
            registry=registry,
        )
        self.ingest_seconds = Histogram(
            "cpu_icac_ingest_batch_seconds",
            "Time to triage and store one batch of reports",
            ["channel"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.hash_entries = Gauge(
            "cpu_icac_hash_set_entries",
            "Known-hash entries loaded in this process",
            registry=registry,
        )


class Icac:
    """The service's parts. Keys are loaded on first use, so building the app (for AsyncAPI or
    the access matrix) needs none."""

    def __init__(
        self,
        *,
        settings: IcacSettings,
        keys: Callable[[], Keyring],
        registry: CollectorRegistry,
        source: str = "icac",
        clock: Callable[[], datetime] = utcnow,
        rules: PriorityRules = DEFAULT_RULES,
    ) -> None:
        self.settings = settings
        self._keys = keys
        self.source = source
        self.clock = clock
        self.rules = rules
        self.metrics = IcacMetrics(registry)
        self.hash_sets = HashSetCache(self.metrics.hash_entries)
        self.ip_window = timedelta(hours=settings.ip_window_hours)
        self.claim_ttl = timedelta(hours=settings.claim_ttl_hours)
        # The PDQ index remembers answers in a dict: one matcher at a time.
        self.match_lock = threading.Lock()
        self._geoip: GeoIpLocator | None = None
        self._geoip_loaded = False

    # -- keys ------------------------------------------------------------------------------

    @functools.cached_property
    def cipher(self) -> FieldCipher:
        return self._keys().field_cipher()

    @functools.cached_property
    def _indexer(self) -> Any:
        return self._keys().blind_indexer()

    @functools.cached_property
    def pseudonyms(self) -> Pseudonymizer:
        return self._keys().pseudonymizer()

    def link_key(self, kind: IdentifierKind, normalised: str) -> str:
        """The blind index of a normalised identifier (the linker's opaque key). Each kind has
        its own HMAC key, derived once per process."""
        return str(self._indexer.index(f"icac_{kind}", normalised))

    def tip_pseudonym(self, tip_id: str) -> str:
        return self.pseudonyms.pseudonym("tip", tip_id)

    def cluster_pseudonym(self, cluster_id: str) -> str:
        return self.pseudonyms.pseudonym("tip_cluster", cluster_id)

    # -- enrichment ------------------------------------------------------------------------

    @property
    def geoip(self) -> GeoIpLocator | None:
        if not self._geoip_loaded:
            path = self.settings.geoip_database
            if path is not None:
                self._geoip = GeoIpLocator(path)
                log.info("GeoIP database opened", database=self._geoip.description)
            else:
                log.warning(
                    "no GeoIP database configured (ICAC_GEOIP_DATABASE): tips are "
                    "placed by phone numbers and e-mail domains only"
                )
            self._geoip_loaded = True
        return self._geoip

    def close(self) -> None:
        if self._geoip is not None:
            self._geoip.close()
        self._geoip = None
        self._geoip_loaded = False
