"""pytest plugin: the whole platform as real processes, for end-to-end tests.

``platform_stack`` starts all five services once per test session on the session's broker,
each with its own fresh PostgreSQL database and its own log file, on free ports. Tests talk to
them over HTTP and Kafka only, like partners and officers do; the privacy tests read the log
files and dump the databases afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cpu_platform.devstack.kafka import ensure_topics, free_port
from cpu_platform.devstack.up import SERVICES
from cpu_platform.testing.processes import ServiceProcess
from cpu_shared.messaging.topics import all_topic_names, topic_configs


@dataclass
class PlatformStack:
    bootstrap_servers: str
    log_dir: Path
    database_urls: dict[str, str]
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.processes[service].url

    def logs(self) -> dict[str, str]:
        """Every line each service has logged so far."""
        return {
            name: proc.log_path.read_text(errors="replace") for name, proc in self.processes.items()
        }


@pytest.fixture(scope="session")
def platform_stack(
    kafka_bootstrap_servers: str, postgres_server: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PlatformStack]:
    ensure_topics(kafka_bootstrap_servers, all_topic_names(), configs=topic_configs())
    log_dir = tmp_path_factory.mktemp("stack-logs")
    urls = {}
    for spec in SERVICES:
        name = f"e2e_{spec.name}"
        postgres_server.create_database(name)  # type: ignore[attr-defined]
        urls[spec.name] = postgres_server.url(name)  # type: ignore[attr-defined]
    stack = PlatformStack(kafka_bootstrap_servers, log_dir, urls)
    try:
        for spec in SERVICES:
            port = free_port()
            prefix = spec.name.upper()
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
                # Its own consumer groups: in-process services that tests start on the same
                # broker must not share (and split) the stack's partitions.
                "KAFKA_GROUP_PREFIX": "e2e-stack.",
                f"{prefix}_PORT": str(port),
                f"{prefix}_DATABASE_URL": urls[spec.name],
            }
            proc = ServiceProcess(f"cpu_{spec.name}.app", env, log_dir / f"{spec.name}.log", port)
            stack.processes[spec.name] = proc.spawn()
        for proc in stack.processes.values():
            proc.wait_healthy(timeout=180)
        yield stack
    finally:
        for proc in stack.processes.values():
            if proc.proc is not None and proc.proc.poll() is None:
                try:
                    proc.terminate(timeout=30)
                except Exception:
                    proc.kill()


def run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine from a synchronous test (browser tests cannot run inside a loop)."""
    return asyncio.run(coro)
