"""Issue 3: a consumer killed with SIGKILL in the middle of a batch of 10,000 events, then
restarted: every event's effect is present exactly once."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_platform.testing.kafka_tools import envelope, produce_envelopes, unique, wait_until

EVENTS = 10_000


async def effect_counts(url: str) -> tuple[int, int]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.text("SELECT count(*), count(DISTINCT event_id) FROM probe_effect")
                )
            ).one()
            return int(row[0]), int(row[1])
    finally:
        await engine.dispose()


async def test_sigkill_mid_batch_then_restart_applies_every_event_once(
    kafka_bootstrap_servers: str, probe_process: Callable[..., object]
) -> None:
    topic = unique("test.exactly-once")
    db = probe_process.database_url  # type: ignore[attr-defined]
    events = [envelope(f"agg-{i % 97}") for i in range(EVENTS)]
    await produce_envelopes(kafka_bootstrap_servers, topic, events)

    first = probe_process(kafka_bootstrap_servers, topic_in=topic, batch="true")
    first.start()  # type: ignore[attr-defined]

    async def some_applied() -> bool:
        return (await effect_counts(db))[0] >= 1500

    await wait_until(some_applied, 120, "the first batches", interval=0.05)
    first.kill()  # type: ignore[attr-defined]  # SIGKILL: no cleanup, no commit
    killed_at = (await effect_counts(db))[0]
    assert killed_at < EVENTS, "the kill should land before the end of the feed"

    second = probe_process(kafka_bootstrap_servers, topic_in=topic, batch="true")
    second.start()  # type: ignore[attr-defined]

    async def all_applied() -> bool:
        return (await effect_counts(db))[1] == EVENTS

    await wait_until(all_applied, 180, "every event to be applied after the restart")
    total, distinct = await effect_counts(db)
    assert (total, distinct) == (EVENTS, EVENTS)
