"""Issue 2: one service publishes, another service's subscriber handles it, on the real broker.

The offset is committed only after the handler finished; a handler that raises leaves it
uncommitted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_casework.app import create_app as create_casework
from cpu_casework.config import CaseworkSettings
from cpu_intake.config import IntakeSettings
from cpu_platform.testing.kafka_tools import (
    committed_offsets,
    envelope,
    produce_envelopes,
    read_all,
    unique,
    wait_until,
)
from cpu_shared.messaging.consumer import ShutdownRequested
from cpu_shared.messaging.outbox import enqueue
from cpu_shared.messaging.topics import REFERRAL_EVENTS
from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable
from cpu_shared.service import ServiceRuntime

NO_ROUTES = PermissionTable("tests", AUDIT_GRANTS)


async def count(url: str, sql: str, **params: object) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).scalar_one()
    finally:
        await engine.dispose()


async def test_intake_event_is_handled_by_casework_then_committed(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str]
) -> None:
    intake_db, casework_db = make_database("intake"), make_database("casework")
    intake = ServiceRuntime(
        IntakeSettings(database_url=intake_db, kafka_bootstrap_servers=kafka_bootstrap_servers),
        migrations_package="cpu_intake.migrations",
    )
    # Its own consumer groups: the session's platform stack also runs a casework service on
    # this broker, and a shared group would split the partitions between the two.
    prefix = unique("delivery") + "."
    casework_app = create_casework(
        CaseworkSettings(
            database_url=casework_db,
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            kafka_group_prefix=prefix,
        )
    )
    event = envelope("referral-e2e", event=unique("x"))
    group = f"{prefix}casework.referral-events"

    async with (
        LifespanManager(
            intake.create_app(title="intake", permissions=NO_ROUTES),
            startup_timeout=120,
            shutdown_timeout=90,
        ),
        LifespanManager(casework_app, startup_timeout=120, shutdown_timeout=90),
    ):
        async with intake.transaction() as session:
            enqueue(session, REFERRAL_EVENTS.name, event)

        async def handled() -> bool:
            return (
                await count(
                    casework_db,
                    "SELECT count(*) FROM inbox WHERE event_id = :e",
                    e=str(event.event_id),
                )
                == 1
            )

        await wait_until(handled, 120, "casework to record the intake event")
        assert await count(intake_db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0

        async def committed() -> bool:
            offsets = await committed_offsets(kafka_bootstrap_servers, group)
            return sum(o for (t, _), o in offsets.items() if t == REFERRAL_EVENTS.name) >= 1

        await wait_until(committed, 90, "casework's offset commit")


async def test_a_failing_handler_leaves_the_offset_uncommitted(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str]
) -> None:
    topic = unique("test.failing")
    settings = IntakeSettings(
        database_url=make_database("probe"), kafka_bootstrap_servers=kafka_bootstrap_servers
    )
    runtime = ServiceRuntime(settings, migrations_package="cpu_intake.migrations")
    calls: list[str] = []
    healthy = asyncio.Event()

    async def handle(_session: object, event: object) -> None:
        calls.append(str(getattr(event, "event_id", "")))
        if not healthy.is_set():
            raise ConnectionError("store unreachable")  # transient: retried, never skipped

    consumer = runtime.consumer(topic, "failing", handle)
    consumer.retry.initial_backoff = 0.05
    async with LifespanManager(
        runtime.create_app(title="t", permissions=NO_ROUTES),
        startup_timeout=120,
        shutdown_timeout=90,
    ):
        await produce_envelopes(kafka_bootstrap_servers, topic, [envelope("a")])

        async def retried() -> bool:
            return len(calls) >= 3

        await wait_until(retried, 120, "the handler to be retried")
        assert await committed_offsets(kafka_bootstrap_servers, consumer.group_id) == {}
        await runtime.lag_monitor.measure()
        lag = {"group": consumer.group_id, "topic": topic, "partition": "0"}
        assert runtime.registry.get_sample_value("cpu_consumer_lag", lag) == 1

        healthy.set()

        async def committed() -> bool:
            offsets = await committed_offsets(kafka_bootstrap_servers, consumer.group_id)
            return offsets.get((topic, 0)) == 1

        await wait_until(committed, 120, "the commit once the handler succeeds")
        await runtime.lag_monitor.measure()
        assert runtime.registry.get_sample_value("cpu_consumer_lag", lag) == 0
        assert await read_all(kafka_bootstrap_servers, topic + ".dlq") == []
    assert len(set(calls)) == 1


async def test_shutdown_during_retries_commits_nothing(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str]
) -> None:
    topic = unique("test.shutdown")
    runtime = ServiceRuntime(
        IntakeSettings(
            database_url=make_database("probe"),
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            graceful_timeout=5,
        ),
        migrations_package="cpu_intake.migrations",
    )
    calls = 0

    async def handle(_session: object, _event: object) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("store unreachable")

    consumer = runtime.consumer(topic, "shutdown", handle)
    async with LifespanManager(
        runtime.create_app(title="t", permissions=NO_ROUTES),
        startup_timeout=120,
        shutdown_timeout=90,
    ):
        await produce_envelopes(kafka_bootstrap_servers, topic, [envelope("a")])

        async def tried() -> bool:
            return calls >= 1

        await wait_until(tried, 120, "the first attempt")
    assert runtime.stopping.is_set()
    assert await committed_offsets(kafka_bootstrap_servers, consumer.group_id) == {}
    assert issubclass(ShutdownRequested, Exception)
