"""The outbox relay publishing through its own aiokafka producer, on the real broker and both
stores: every row once, in order per key, marked sent only once the broker has confirmed it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner

from cpu_platform.devstack.kafka import ensure_topics, free_port
from cpu_shared.db import apply_migrations, create_engine, session_factory
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.outbox import KafkaOutboxProducer, OutboxRelay, enqueue

MIGRATIONS = "cpu_intake.migrations"


def event(aggregate: str, seq: int) -> EventEnvelope:
    return EventEnvelope(
        event_type="t.happened",
        event_version=1,
        source="tests",
        aggregate_id=aggregate,
        aggregate_version=seq,
        correlation_id="c",
        data={"seq": seq},
    )


@pytest.fixture(params=["postgresql", "sqlite"])
async def outbox_store(
    request: pytest.FixtureRequest, make_database: Callable[[str], str], tmp_path: Path
) -> str:
    if request.param == "postgresql":
        url = make_database("relay_kafka")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    await apply_migrations(MIGRATIONS, url)
    return url


async def _unsent(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(
                sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def test_relay_with_its_own_producer_publishes_each_row_once_in_key_order(
    outbox_store: str, kafka_bootstrap_servers: str
) -> None:
    topic = f"test.outbox.kafka.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap_servers, {topic: 3})
    engine = create_engine(outbox_store)
    sessions = session_factory(engine)
    aggregates = [f"agg-{n}-{uuid.uuid4().hex[:6]}" for n in range(4)]
    expected: dict[str, uuid.UUID] = {}
    for seq in range(150):
        async with sessions() as session, session.begin():
            for agg in aggregates:
                envelope = event(agg, seq)
                expected[str(envelope.event_id)] = envelope.event_id
                enqueue(session, topic, envelope)
    # Small record batches: a cycle fills several per partition, sent one after the other.
    producer = KafkaOutboxProducer(
        kafka_bootstrap_servers, client_id="test-relay", max_batch_size=4096
    )
    relay = OutboxRelay(engine=engine, publish=_never, service="t")
    relay.use_producer(producer, batch_size=128)
    sent = 0
    while (count := await relay.publish_pending()) > 0:
        assert count <= 128
        sent += count
    assert sent == 600
    assert await _unsent(outbox_store) == 0
    relay.stop()
    await relay.run()  # returns at once (stopping) and stops the producer
    assert producer._producer is None

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"test-{uuid.uuid4().hex}",
    )
    await consumer.start()
    received: list[tuple[str, int, str]] = []
    try:
        while len(received) < 600:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "the broker holds fewer messages than were marked sent"
            for records in batch.values():
                for record in records:
                    body = EventEnvelope.from_bytes(record.value)
                    headers = {k: v.decode() for k, v in record.headers}
                    assert record.key == body.aggregate_id.encode()
                    # The partition any Kafka client's default partitioner gives the key.
                    assert record.partition == DefaultPartitioner()(record.key, [0, 1, 2], [])
                    assert headers["event_id"] == str(body.event_id)
                    received.append(
                        (body.aggregate_id, body.aggregate_version, headers["event_id"])
                    )
        assert not await consumer.getmany(timeout_ms=1000)  # nothing published twice
    finally:
        await consumer.stop()
    assert sorted(e for _, _, e in received) == sorted(expected)
    for agg in aggregates:
        assert [s for a, s, _ in received if a == agg] == list(range(150))
    await engine.dispose()


async def test_unconfirmed_rows_stay_unsent_when_the_broker_is_unreachable(
    outbox_store: str,
) -> None:
    engine = create_engine(outbox_store)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        enqueue(session, "t", event("a", 1))
    producer = KafkaOutboxProducer(
        f"127.0.0.1:{free_port()}", client_id="test-relay", request_timeout_ms=2000
    )
    relay = OutboxRelay(engine=engine, publish=_never, service="t")
    relay.use_producer(producer)
    with pytest.raises(Exception, match=r"(?i)bootstrap|connect"):
        await relay.publish_pending()
    assert await _unsent(outbox_store) == 1
    assert producer._producer is None  # a failed start leaves nothing half-open
    await engine.dispose()


async def _never(*_args: object) -> object:
    raise AssertionError("the relay must publish through its own producer")
