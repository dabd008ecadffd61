"""The project's own Kafka broker (cpu_platform.devstack.kafka) against a real JVM broker."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cpu_platform.devstack.kafka import (
    KAFKA_VERSION,
    LocalKafka,
    cache_root,
    ensure_kafka_jars,
    ensure_topics,
    free_port,
)

pytest_plugins = ["cpu_platform.testing.kafka_fixtures"]


# -- helpers ---------------------------------------------------------------------------------


async def _produce(bootstrap: str, topic: str, value: bytes, key: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value=value, key=key)
        return meta.offset
    finally:
        await producer.stop()


async def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes, bytes]]:
    """Every record of a one-partition topic, from offset 0 up to its current end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        records: list[tuple[bytes, bytes]] = []
        deadline = time.monotonic() + 20.0
        while await consumer.position(tp) < end:
            assert time.monotonic() < deadline, f"read {len(records)} of {end} records"
            batch = await consumer.getmany(tp, timeout_ms=1000)
            records += [(r.key, r.value) for r in batch.get(tp, [])]
        return records
    finally:
        await consumer.stop()


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _java_pids_for(data_dir: Path) -> list[int]:
    """Live processes whose command line mentions this broker's data directory."""
    needle = str(data_dir).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and b"java" in cmdline:
            pids.append(int(entry.name))
    return pids


# -- the broker ------------------------------------------------------------------------------


async def test_produce_consume_stop_restart(restartable_kafka: LocalKafka) -> None:
    kafka = restartable_kafka
    bootstrap = kafka.bootstrap_servers
    assert kafka.is_running()
    assert bootstrap == f"127.0.0.1:{kafka.port}"

    topic = f"devstack.roundtrip.{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, {topic: 1, f"{topic}.wide": 3})
    ensure_topics(bootstrap, {topic: 1, f"{topic}.wide": 3})  # idempotent
    assert {topic, f"{topic}.wide"} <= await _topics(bootstrap)
    with pytest.raises(RuntimeError, match="InvalidTopic"):
        ensure_topics(bootstrap, {"not a valid name!": 1}, timeout=10)

    # An idempotent (acks=all) producer round trip.
    offset = await _produce(bootstrap, topic, b"before-restart", b"k1")
    assert offset == 0
    assert await _read_all(bootstrap, topic) == [(b"k1", b"before-restart")]

    # stop(): the JVM of this instance is gone, and stop() is idempotent.
    pid = kafka.pid
    assert pid is not None and _pid_alive(pid)
    kafka.stop()
    kafka.stop()
    assert not kafka.is_running()
    assert kafka.pid is None
    assert not _pid_alive(pid)
    assert _java_pids_for(kafka.data_dir) == []

    # start() again on the same directory: same address, the topic and the record survive.
    kafka.start()
    assert kafka.is_running()
    assert kafka.pid != pid
    assert kafka.bootstrap_servers == bootstrap
    assert {topic, f"{topic}.wide"} <= await _topics(bootstrap)
    await _produce(bootstrap, topic, b"after-restart", b"k2")
    assert await _read_all(bootstrap, topic) == [
        (b"k1", b"before-restart"),
        (b"k2", b"after-restart"),
    ]
    assert "Kafka Server started" in kafka.log_file.read_text()


def test_start_failure_reports_broker_output(tmp_path: Path) -> None:
    # The port is taken by another listener: the JVM exits and start() says why.
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        kafka = LocalKafka(tmp_path / "kafka", port=taken)
        with pytest.raises(RuntimeError, match=r"(?s)during start-up.*already in use.*broker\.out"):
            kafka.start(timeout=60)
    assert not kafka.is_running()
    kafka.stop()  # still idempotent after a failed start


async def test_session_fixture_serves_a_broker(kafka_bootstrap_servers: str) -> None:
    topic = f"devstack.session.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap_servers, {topic: 1})
    await _produce(kafka_bootstrap_servers, topic, b"hello", b"k")
    assert await _read_all(kafka_bootstrap_servers, topic) == [(b"k", b"hello")]


# -- jars and cache --------------------------------------------------------------------------


def test_cache_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CPU_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "cpu-platform"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "cpu-platform"
    monkeypatch.setenv("CPU_CACHE_DIR", str(tmp_path / "explicit"))
    assert cache_root() == tmp_path / "explicit"


def test_jars_marker_short_circuits_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_libs = ensure_kafka_jars()  # warm already: a broker test ran, or the cache was fetched
    real_home = real_libs.parent
    assert any(p.name == f"kafka_2.13-{KAFKA_VERSION}.jar" for p in real_libs.iterdir())

    # A cache holding the marker returns at once even with no mvn on PATH.
    fake_home = tmp_path / f"kafka-{KAFKA_VERSION}"
    (fake_home / "libs").mkdir(parents=True)
    shutil.copy(real_home / ".complete", fake_home / ".complete")
    monkeypatch.setenv("CPU_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert ensure_kafka_jars() == fake_home / "libs"

    # Without the marker it needs mvn, and says so clearly.
    (fake_home / ".complete").unlink()
    with pytest.raises(RuntimeError, match="mvn"):
        ensure_kafka_jars()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
