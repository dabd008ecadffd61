"""Configuration of the icac service, from ``ICAC_*`` variables."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings
from cpu_shared.messaging.topics import TIPS_INBOUND


class IcacSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ICAC_", extra="ignore")

    service_name: str = "icac"
    port: int = 8104
    database_url: str = "sqlite+aiosqlite:///./var/icac.db"

    # A MaxMind-format database (GeoIP2/GeoLite2 City, or the unit's own) supplied by the
    # operator. Without one, tips are placed by their phones and e-mail domains only.
    geoip_database: Path | None = None

    # The raw tip feed (CONTRACT.md section 4) and the consumer group reading it
    # (``icac.<group>``). Tests give each run its own topic and group.
    inbound_topic: str = TIPS_INBOUND.name
    inbound_group: str = "tips-inbound"
    # Reports per consumer batch: large batches amortise every round trip to the store.
    consumer_max_records: int = Field(default=2000, ge=1, le=10_000)
    # Outbox rows the relay claims, publishes and marks sent per cycle.
    relay_batch: int = Field(default=4000, ge=1, le=20_000)

    # POST /api/v1/tips/import: the largest file accepted (413 beyond), and reports per
    # transaction while it is stored.
    import_max_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    import_batch: int = Field(default=1000, ge=1, le=10_000)
    # POST /api/v1/hash-sets: the largest list accepted.
    hash_set_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)

    # Tips seen at one IP address within this many hours of each other are linked.
    ip_window_hours: float = Field(default=48, gt=0)
    # An analyst's claim on a tip lapses after this many hours (a shift).
    claim_ttl_hours: float = Field(default=8, gt=0)

    # Garbage collection for a process that holds large hash sets: objects alive after the
    # sets are loaded are frozen out of the collector's scans, and the first generation is
    # collected every N allocations instead of every 700 (0: leave Python's default). Above
    # what a 2,000-tip batch keeps alive at once, so a batch seldom pays for a collection
    # (50,000 cost about 24 us of CPU a tip, 200,000 about 4).
    gc_gen0_threshold: int = Field(default=200_000, ge=0)
