"""Configuration of the reporting service, from ``REPORTING_*`` variables."""

from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    service_name: str = "reporting"
    port: int = 8105
    database_url: str = "sqlite+aiosqlite:///./var/reporting.db"
