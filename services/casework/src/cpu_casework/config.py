"""Configuration of the casework service, from ``CASEWORK_*`` variables."""

from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class CaseworkSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CASEWORK_", extra="ignore")

    service_name: str = "casework"
    port: int = 8102
    database_url: str = "sqlite+aiosqlite:///./var/casework.db"
