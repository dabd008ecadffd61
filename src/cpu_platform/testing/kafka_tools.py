"""Test helpers that talk to a real broker: produce, read back, committed offsets, waiting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cpu_shared.messaging.dead_letters import topic_partitions
from cpu_shared.messaging.envelope import EventEnvelope


def bearer(*roles: str, user: str = "tester", **claims: object) -> dict[str, str]:
    """An Authorization header with a dev token for ``roles``."""
    from cpu_shared.security.auth import AuthSettings, mint_dev_token

    token = mint_dev_token(AuthSettings(), user, list(roles), **claims)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def unique(prefix: str) -> str:
    """A topic or group name no other test uses, so tests never share broker state."""
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


def envelope(aggregate_id: str = "agg-1", *, version: int = 1, **data: Any) -> EventEnvelope:
    return EventEnvelope(
        event_type="probe.command",
        event_version=1,
        source="tests",
        aggregate_id=aggregate_id,
        aggregate_version=version,
        correlation_id=uuid.uuid4().hex,
        data=data,
    )


async def produce(
    bootstrap: str, topic: str, messages: Iterable[tuple[bytes | None, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_envelopes(bootstrap: str, topic: str, events: Iterable[EventEnvelope]) -> None:
    await produce(bootstrap, topic, ((e.aggregate_id.encode(), e.to_bytes()) for e in events))


async def read_all(bootstrap: str, topic: str, timeout: float = 30) -> list[ConsumerRecord]:
    """Every record now in ``topic`` (all partitions), read without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending and time.monotonic() < deadline:
            got = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in got.items():
                out.extend(r for r in records if r.offset < ends[tp])
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
        return out
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    """The offsets ``group`` has committed, by (topic, partition)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for attempt in range(20):
            try:
                offsets = await admin.list_consumer_group_offsets(group)
                return {
                    (tp.topic, tp.partition): meta.offset
                    for tp, meta in offsets.items()
                    if meta.offset >= 0
                }
            except Exception:
                # The group coordinator may not be ready just after start.
                if attempt == 19:
                    raise
                await asyncio.sleep(0.25)
        return {}
    finally:
        await admin.close()


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
