"""Configuration of the icac service, from ``ICAC_*`` variables."""

from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class IcacSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ICAC_", extra="ignore")

    service_name: str = "icac"
    port: int = 8104
    database_url: str = "sqlite+aiosqlite:///./var/icac.db"
