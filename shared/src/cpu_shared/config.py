"""Service configuration from the environment (CONTRACT.md section 2)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service shares.

    A service subclasses this with ``env_prefix="<SERVICE>_"`` and its own defaults, so
    ``INTAKE_PORT`` and ``INTAKE_DATABASE_URL`` configure intake, while the broker address is
    the one variable they all read.
    """

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = "sqlite+aiosqlite:///./var/service.db"
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS"),
    )
    # Put before every consumer group id ("<prefix><service>.<group>"), so that two
    # deployments (or a test session's stack and its in-process tests) can share one cluster
    # without taking each other's partitions.
    kafka_group_prefix: str = Field(default="", validation_alias=AliasChoices("KAFKA_GROUP_PREFIX"))
    log_level: str = "INFO"
    # Seconds a stopping process waits for in-flight handlers and requests.
    graceful_timeout: float = 20.0
    # Seconds /ready waits for the broker and the store before answering 503.
    readiness_timeout: float = 2.0
    run_migrations: bool = True
    # Seconds between measurements of consumer lag and dead-letter depth.
    lag_interval: float = 15.0
