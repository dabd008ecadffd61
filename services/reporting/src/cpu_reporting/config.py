"""Configuration of the reporting service, from ``REPORTING_*`` variables."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cpu_shared.config import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore")

    service_name: str = "reporting"
    port: int = 8105
    database_url: str = "sqlite+aiosqlite:///./var/reporting.db"
    # Published counts from 1 to threshold-1 show as "<threshold" (REPORTING_SUPPRESSION_THRESHOLD).
    suppression_threshold: int = Field(default=5, ge=2, le=100)
    # Longest period one request may cover, in days (a guard on query cost).
    max_period_days: int = Field(default=366 * 25, ge=31)
    # Processes that read and fold the topics in `cpu reporting rebuild`, each a share of the
    # partitions (REPORTING_REBUILD_PROCESSES); 0: one per CPU.
    rebuild_processes: int = Field(default=0, ge=0, le=64)
    # A TrueType font with Khmer and Latin glyphs, for the PDF and its charts.
    khmer_font: str = "/usr/share/fonts/truetype/khmeros/KhmerOS.ttf"
