"""Configuration of the casework service, from ``CASEWORK_*`` variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class CaseworkSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWORK_", extra="ignore")

    service_name: str = "casework"
    port: int = 8102
    database_url: str = "sqlite+aiosqlite:///./var/casework.db"
    # First contact with every child of a case within this many hours of the referral,
    # by the case's priority (CASEWORK_FIRST_CONTACT_P1_HOURS=24 ...).
    first_contact_p1_hours: float = Field(default=24, gt=0)
    first_contact_p2_hours: float = Field(default=72, gt=0)
    first_contact_p3_hours: float = Field(default=168, gt=0)
    # Longest time the broker holds a consumer's fetch when there is no data (see
    # entrypoints/stream.py: it bounds how long a new referral can wait to be picked up).
    consumer_fetch_max_wait_ms: int = Field(default=100, ge=10, le=500)
    # How often the overdue first-contact gauge is recomputed from the store.
    overdue_metric_interval_seconds: float = Field(default=30, gt=0)
