"""Outbox relay and ordering guard against real stores: PostgreSQL (and SQLite, the local run)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from cpu_shared.db import apply_migrations, create_engine, session_factory
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.ordering import claim_version
from cpu_shared.messaging.outbox import OutboxRelay, enqueue

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


class RecordingBroker:
    """Stands in for the producer to observe what each relay instance publishes."""

    def __init__(self) -> None:
        self.published: list[tuple[str, int]] = []

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        body = EventEnvelope.from_bytes(value)
        self.published.append((key.decode(), body.aggregate_version))
        await asyncio.sleep(0)  # let other relays interleave
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@pytest.fixture(params=["postgresql", "sqlite"])
async def store_url(
    request: pytest.FixtureRequest, make_database: Callable[[str], str], tmp_path: Path
) -> str:
    if request.param == "postgresql":
        url = make_database("relay")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}"
    await apply_migrations(MIGRATIONS, url)
    return url


async def test_several_relays_never_publish_a_row_twice_and_keep_aggregate_order(
    store_url: str,
) -> None:
    engine = create_engine(store_url)
    sessions = session_factory(engine)
    aggregates = [f"agg-{uuid.uuid4().hex[:6]}" for _ in range(5)]
    for seq in range(200):
        async with sessions() as session, session.begin():
            for agg in aggregates:
                enqueue(session, "t", event(agg, seq))
    broker = RecordingBroker()
    relays = [
        OutboxRelay(
            engine=create_engine(store_url), publish=broker.publish, service="t", batch_size=37
        )
        for _ in range(3)
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        async with asyncio.timeout(120):
            while len(broker.published) < 1000:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # anything published twice would show up now
    finally:
        for r in relays:
            r.stop()
        await asyncio.gather(*tasks)
    assert len(broker.published) == 1000
    assert Counter(broker.published).most_common(1)[0][1] == 1, "a row was published twice"
    for agg in aggregates:
        assert [s for a, s in broker.published if a == agg] == list(range(200))
    async with engine.connect() as conn:
        unsent = await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
        assert unsent.scalar_one() == 0
    await engine.dispose()


async def test_a_failed_publish_leaves_rows_unsent_for_the_next_cycle(store_url: str) -> None:
    engine = create_engine(store_url)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        enqueue(session, "t", event("a", 1))

    async def failing(*_args: object) -> asyncio.Future[Any]:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_exception(ConnectionError("broker down"))
        return done

    relay = OutboxRelay(engine=engine, publish=failing, service="t")
    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    broker = RecordingBroker()
    relay = OutboxRelay(engine=engine, publish=broker.publish, service="t")
    assert await relay.publish_pending() == 1
    assert broker.published == [("a", 1)]
    assert await relay.publish_pending() == 0
    await engine.dispose()


async def test_claim_version_ignores_stale_and_repeated_versions(store_url: str) -> None:
    engine = create_engine(store_url)
    sessions = session_factory(engine)
    outcomes = []
    for version in (1, 3, 2, 3, 4):
        async with sessions() as session, session.begin():
            outcomes.append(
                await claim_version(session, stream="cases", aggregate_id="c-1", version=version)
            )
    assert outcomes == [True, True, False, False, True]
    await engine.dispose()
