"""Relay and consumer throughput on PostgreSQL and the real broker (issue 3).

- relay: outbox rows -> broker (idempotent producer, acks=all, confirmed) -> marked sent.
- consumer: envelopes -> batch consumer -> one effect row + one inbox row each -> commit.
- raw: plain aiokafka getmany over the same messages, the ceiling a Python consumer starts from.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from asgi_lifespan import LifespanManager

from cpu_platform.devstack.kafka import LocalKafka, ensure_topics
from cpu_platform.devstack.postgres import LocalPostgres
from cpu_platform.testing.kafka_tools import envelope, produce_envelopes
from cpu_platform.testing.probe_service.__main__ import ProbeSettings, build
from cpu_shared.db import apply_migrations, create_engine, session_factory
from cpu_shared.messaging.outbox import enqueue

N = 50_000


async def relay_throughput(bootstrap: str, url: str) -> float:
    settings = ProbeSettings(
        database_url=url,
        kafka_bootstrap_servers=bootstrap,
        topic_in="bench.unused",
        topic_out="bench.relay",
    )
    await apply_migrations("cpu_platform.testing.probe_service.migrations", url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    for start in range(0, N, 5000):
        async with sessions() as session, session.begin():
            for i in range(start, start + 5000):
                enqueue(session, "bench.relay", envelope(f"agg-{i % 500}", version=i))
    await engine.dispose()
    app, runtime = build(settings)
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=90):
        started = time.perf_counter()
        while True:
            async with runtime.engine.connect() as conn:
                left = (
                    await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
                ).scalar_one()
            if left == 0:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    return N / elapsed


async def consumer_throughput(bootstrap: str, url: str) -> float:
    topic = "bench.consume"
    await produce_envelopes(bootstrap, topic, [envelope(f"agg-{i % 500}") for i in range(N)])
    settings = ProbeSettings(
        database_url=url, kafka_bootstrap_servers=bootstrap, topic_in=topic, batch=True
    )
    app, runtime = build(settings)
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=90):
        started = time.perf_counter()
        while True:
            async with runtime.engine.connect() as conn:
                done = (
                    await conn.execute(sa.text("SELECT count(*) FROM probe_effect"))
                ).scalar_one()
            if done >= N:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
    return N / elapsed


async def raw_consume(bootstrap: str) -> float:
    consumer = AIOKafkaConsumer(
        "bench.consume",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id="bench.raw",
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < N:
            batch = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batch.values():
                for record in records:
                    envelope_bytes = record.value
                    seen += 1 if envelope_bytes else 0
    finally:
        await consumer.stop()
    return N / (time.perf_counter() - started)


async def run(bootstrap: str, pg: LocalPostgres) -> None:
    ensure_topics(bootstrap, {"bench.relay": 3, "bench.consume": 3, "bench.unused": 1})
    pg.create_database("bench_relay")
    pg.create_database("bench_consume")
    relay = await relay_throughput(bootstrap, pg.url("bench_relay"))
    await apply_migrations("cpu_platform.testing.probe_service.migrations", pg.url("bench_consume"))
    consume = await consumer_throughput(bootstrap, pg.url("bench_consume"))
    raw = await raw_consume(bootstrap)
    print(f"events: {N:,} per run, PostgreSQL {pg.port}, broker {bootstrap}")
    print(f"outbox relay throughput:        {relay:10,.0f} events/s (confirmed, marked sent)")
    print(f"consumer throughput (batch):    {consume:10,.0f} events/s (effect + inbox, committed)")
    print(
        f"raw aiokafka consume, same msgs:{raw:10,.0f} events/s "
        f"(consumer is {consume / raw:.0%} of raw)"
    )


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="cpu-bench-"))
    with LocalKafka(base / "kafka") as kafka, LocalPostgres(base / "pg") as pg:
        asyncio.run(run(kafka.bootstrap_servers, pg))


if __name__ == "__main__":
    main()
