"""Configuration of the intake service, from ``INTAKE_*`` variables."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")

    service_name: str = "intake"
    port: int = 8101
    database_url: str = "sqlite+aiosqlite:///./var/intake.db"
    #: The unit's triage rule table (JSON, see cpu_intake.domain.triage); the packaged default
    #: when unset. Read once at start: a broken file stops the service instead of mis-triaging.
    triage_rules_file: Path | None = None
    #: At most this many earlier referrals are scored for one new referral (those whose shared
    #: blind-index digests weigh most). Matching stays bounded however common a name is.
    match_candidate_limit: int = Field(default=200, ge=10, le=10_000)
