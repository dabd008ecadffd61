"""Fixtures for platform tests: the probe service as a real process on the session broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cpu_platform.devstack.kafka import free_port
from cpu_platform.testing.processes import ServiceProcess


@pytest.fixture
def probe_process(
    tmp_path: Path, make_database: Callable[[str], str]
) -> Iterator[Callable[..., ServiceProcess]]:
    """A factory: ``probe_process(bootstrap, topic_in=..., **env)`` -> a not yet started probe."""
    made: list[ServiceProcess] = []
    database = make_database("probe")

    def make(bootstrap: str, **settings: str) -> ServiceProcess:
        port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "PROBE_PORT": str(port),
            "PROBE_DATABASE_URL": database,
            "PROBE_GRACEFUL_TIMEOUT": "20",
        }
        env |= {f"PROBE_{k.upper()}": str(v) for k, v in settings.items()}
        proc = ServiceProcess(
            "cpu_platform.testing.probe_service", env, tmp_path / f"probe-{len(made)}.log", port
        )
        made.append(proc)
        return proc

    make.database_url = database  # type: ignore[attr-defined]
    yield make
    for proc in made:
        proc.kill()
