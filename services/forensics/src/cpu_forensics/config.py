"""Configuration of the forensics service, from ``FORENSICS_*`` variables."""

from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class ForensicsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FORENSICS_", extra="ignore")

    service_name: str = "forensics"
    port: int = 8103
    database_url: str = "sqlite+aiosqlite:///./var/forensics.db"
