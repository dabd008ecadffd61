"""pytest plugin: a real Kafka broker for tests.

Enable it from the root ``conftest.py``::

    pytest_plugins = ["cpu_platform.testing.kafka_fixtures"]

Fixtures:

``kafka_bootstrap_servers`` (session)
    ``$KAFKA_BOOTSTRAP_SERVERS`` if set (an existing broker, used as is); else, if a Docker
    engine answers, a testcontainers Kafka container; else a :class:`LocalKafka` of this test
    session in a temporary directory on a free port (never the dev broker's 9092). Stopped at
    the end of the session.

``restartable_kafka`` (function)
    A started :class:`LocalKafka` of the test's own (always local, temporary directory, free
    port), stopped at teardown. For tests that ``stop()`` and ``start()`` the broker.

Environment: ``CPU_KAFKA_TEST_IMAGE`` overrides the container image of the Docker path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from cpu_platform.devstack.kafka import LocalKafka

__all__ = ["kafka_bootstrap_servers", "restartable_kafka"]

# Confluent Platform 7.9 = Apache Kafka 3.9, the newest line testcontainers-python's
# KafkaContainer (Confluent images only) is known to drive in KRaft mode.
DEFAULT_TEST_IMAGE = "confluentinc/cp-kafka:7.9.0"


def _docker_engine_available(timeout: float = 5.0) -> bool:
    """True if ``docker info`` succeeds quickly (a client without an engine fails)."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(
            ["docker", "info"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _kafka_container() -> Any:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # older testcontainers releases
        from testcontainers.kafka import KafkaContainer
    image = os.environ.get("CPU_KAFKA_TEST_IMAGE", DEFAULT_TEST_IMAGE)
    return KafkaContainer(image).with_kraft()


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of a Kafka broker shared by the whole test session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external
        return
    if _docker_engine_available():
        container = _kafka_container()
        container.start()
        try:
            yield container.get_bootstrap_server()
        finally:
            container.stop()
        return
    broker = LocalKafka(tmp_path_factory.mktemp("kafka-session"))
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def restartable_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A started LocalKafka owned by one test, which may stop and restart it."""
    broker = LocalKafka(tmp_path_factory.mktemp("kafka-restartable"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
