"""Issue 3: a transient failure (the database is down) is retried with backoff, never
dead-lettered, and the event is applied once when the database is back."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from cpu_platform.devstack.postgres import LocalPostgres
from cpu_platform.testing.kafka_tools import (
    envelope,
    produce_envelopes,
    read_all,
    unique,
    wait_until,
)
from cpu_platform.testing.probe_service.__main__ import ProbeSettings, build


async def test_database_outage_is_retried_not_dead_lettered(
    kafka_bootstrap_servers: str, tmp_path: Path
) -> None:
    topic = unique("test.db-down")
    with LocalPostgres(tmp_path / "pg") as pg:
        pg.create_database("probe")
        settings = ProbeSettings(
            database_url=pg.url("probe"),
            topic_in=topic,
            kafka_bootstrap_servers=kafka_bootstrap_servers,
        )
        app, runtime = build(settings)
        labels = {"topic": topic, "group": "probe.probe"}
        sample = runtime.registry.get_sample_value
        async with LifespanManager(app, startup_timeout=120, shutdown_timeout=90):
            pg.stop()
            event = envelope("a")
            await produce_envelopes(kafka_bootstrap_servers, topic, [event])

            async def failing() -> bool:
                return (sample("cpu_events_failed_total", labels) or 0) >= 2

            await wait_until(failing, 90, "the handler to fail while the database is down")
            pg.start()

            async def applied() -> bool:
                try:
                    async with runtime.engine.connect() as conn:
                        q = sa.text("SELECT count(*) FROM probe_effect WHERE event_id = :e")
                        return (await conn.execute(q, {"e": str(event.event_id)})).scalar_one() == 1
                except Exception:
                    return False

            await wait_until(applied, 120, "the event once the database is back")
            attempts = sample("cpu_events_failed_total", labels)
        assert sample("cpu_events_dead_lettered_total", labels) is None
        assert await read_all(kafka_bootstrap_servers, topic + ".dlq") == []
        # Backoff, not a hot loop: a handful of attempts over the outage, not thousands.
        assert attempts is not None and attempts < 60
