"""Configuration of the intake service, from ``INTAKE_*`` variables."""

from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class IntakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore")

    service_name: str = "intake"
    port: int = 8101
    database_url: str = "sqlite+aiosqlite:///./var/intake.db"
