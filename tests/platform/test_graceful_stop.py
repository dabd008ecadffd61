"""Issue 2: SIGTERM finishes in-flight work and commits no offset for unprocessed messages."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_platform.testing.kafka_tools import (
    committed_offsets,
    envelope,
    produce_envelopes,
    unique,
    wait_until,
)


async def effects(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text("SELECT count(*) FROM probe_effect"))).scalar_one()
    finally:
        await engine.dispose()


async def test_sigterm_finishes_in_flight_and_commits_only_what_was_done(
    kafka_bootstrap_servers: str, probe_process: Callable[..., object]
) -> None:
    topic = unique("test.graceful")
    probe = probe_process(kafka_bootstrap_servers, topic_in=topic, handler_delay="1.0")
    db = probe_process.database_url  # type: ignore[attr-defined]
    await produce_envelopes(kafka_bootstrap_servers, topic, [envelope("a") for _ in range(8)])
    probe.start()  # type: ignore[attr-defined]

    async def working() -> bool:
        return await effects(db) >= 2

    await wait_until(working, 120, "the probe to apply some events")
    # uvicorn re-raises SIGTERM after its clean shutdown, so the code is -15 (or 0).
    assert probe.terminate(timeout=60) in (0, -15)  # type: ignore[attr-defined]
    assert '"service stopped"' in probe.log_tail()  # type: ignore[attr-defined]

    done = await effects(db)
    offsets = await committed_offsets(kafka_bootstrap_servers, "probe.probe")
    assert 2 <= done < 8, "the stop should have come in the middle of the work"
    # Every applied event is committed, and nothing that was not applied.
    assert offsets.get((topic, 0)) == done
