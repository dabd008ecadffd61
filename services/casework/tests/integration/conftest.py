"""A casework app on its own fresh PostgreSQL database, driven in-process.

The app is built by ``create_app`` exactly as the service process builds it, but its lifespan
is not run: no broker connection, no outbox relay, so what a handler publishes stays in the
outbox table where the tests read it. Events are delivered through the service's own
``EventConsumer`` (inbox and all), the same code path the broker feeds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from fastapi import FastAPI

from cpu_casework.app import create_app
from cpu_casework.config import CaseworkSettings
from cpu_casework.service_layer.context import Casework
from cpu_platform.testing.kafka_tools import bearer
from cpu_shared.contracts import EventData, new_envelope
from cpu_shared.contracts.intake import ChildProfile, ReferralTriaged
from cpu_shared.db import apply_migrations
from cpu_shared.messaging.consumer import RetryPolicy
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.tables import OutboxMessage
from cpu_shared.messaging.topics import EVIDENCE_EVENTS, REFERRAL_EVENTS, TIP_EVENTS
from cpu_shared.service import ServiceRuntime


class Clock:
    """The service's clock, moved by the tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Harness:
    app: FastAPI
    runtime: ServiceRuntime
    cw: Casework
    client: httpx.AsyncClient
    clock: Clock
    versions: dict[str, int] = field(default_factory=dict)

    # -- ids as other services make them --------------------------------------------------

    def referral_id(self) -> tuple[str, str]:
        """(intake's referral id, its pseudonym)."""
        internal = str(uuid.uuid4())
        return internal, self.cw.referral_pseudonym(internal)

    def child_id(self) -> str:
        return self.cw.pseudonyms.pseudonym("child", str(uuid.uuid4()))

    # -- events ----------------------------------------------------------------------------

    def envelope(self, data: EventData, aggregate_id: str, *, source: str) -> EventEnvelope:
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        return new_envelope(
            data,
            source=source,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            correlation_id=uuid.uuid4().hex,
        )

    def triaged(
        self,
        referral: str,
        *,
        children: Iterable[tuple[str, int | None]] = (),
        concerns: Iterable[str] = ("physical_abuse",),
        teams: Iterable[str] = ("OVCS",),
        priority: str = "P2",
        province: str = "12",
        same_child_as: str | None = None,
        received_at: datetime | None = None,
    ) -> EventEnvelope:
        kids = list(children) or [(self.child_id(), 10)]
        data = ReferralTriaged(
            referral_id=referral,
            received_at=received_at or self.clock() - timedelta(minutes=5),
            priority=priority,  # type: ignore[arg-type]
            teams=list(teams),  # type: ignore[arg-type]
            rule_ids=["victim_support"],
            province_code=province,
            concerns=list(concerns),  # type: ignore[arg-type]
            children=[
                ChildProfile(child_id=c, age_years=age, sex="female", province_code=province)
                for c, age in kids
            ],
            same_child_as_referral_id=same_child_as,
        )
        return self.envelope(data, referral, source="intake")

    async def deliver(self, topic: str, *envelopes: EventEnvelope, as_batch: bool = False) -> None:
        """Hand envelopes to the service's consumer of ``topic`` (inbox, handler, commit), one
        poll each, or all in one poll as a batch consumer receives them."""
        consumer = next(c for c in self.runtime.consumers if c.topic == topic)
        # No broker here: a message the consumer would dead-letter fails the test instead.
        consumer.retry = RetryPolicy(max_attempts=2, initial_backoff=0.01)

        async def refuse(_record: Any, reason: str, exc: BaseException, *_: Any) -> None:
            raise AssertionError(f"dead-lettered: {reason}") from exc

        consumer._dead_letter = refuse  # type: ignore[method-assign]
        records: list[ConsumerRecord] = []
        for offset, env in enumerate(envelopes):
            record = ConsumerRecord(
                topic=topic,
                partition=0,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=env.aggregate_id.encode(),
                value=env.to_bytes(),
                checksum=None,
                serialized_key_size=len(env.aggregate_id),
                serialized_value_size=len(env.to_bytes()),
                headers=(),
            )
            records.append(record)
        for poll in [records] if as_batch else [[r] for r in records]:
            await consumer.process(poll)

    async def deliver_referral(self, *envelopes: EventEnvelope) -> None:
        await self.deliver(REFERRAL_EVENTS.name, *envelopes)

    async def deliver_tip(self, *envelopes: EventEnvelope, as_batch: bool = False) -> None:
        await self.deliver(TIP_EVENTS.name, *envelopes, as_batch=as_batch)

    async def deliver_evidence(self, *envelopes: EventEnvelope) -> None:
        await self.deliver(EVIDENCE_EVENTS.name, *envelopes)

    # -- the store ---------------------------------------------------------------------------

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.runtime.engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())

    async def outbox(self) -> list[EventEnvelope]:
        async with self.runtime.sessions() as session:
            rows = await session.execute(sa.select(OutboxMessage).order_by(OutboxMessage.id))
            return [EventEnvelope.from_bytes(row.payload) for row in rows.scalars()]

    async def case_id_of(self, referral_pseudonym: str) -> str:
        return str(
            await self.scalar(
                "SELECT case_id FROM case_referrals WHERE referral_id = :r AND active",
                r=referral_pseudonym,
            )
        )

    # -- the API -----------------------------------------------------------------------------

    @staticmethod
    def token(*roles: str, user: str = "officer", **claims: Any) -> dict[str, str]:
        return bearer(*roles, user=user, **claims)


@pytest.fixture
async def casework(make_database: Callable[[str], str]) -> AsyncIterator[Harness]:
    url = make_database("casework")
    await apply_migrations("cpu_casework.migrations", url)
    app = create_app(
        CaseworkSettings(
            database_url=url, kafka_bootstrap_servers="127.0.0.1:9", run_migrations=False
        )
    )
    runtime: ServiceRuntime = app.state.runtime
    cw: Casework = app.state.casework
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    cw.clock = clock
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://casework") as client:
        yield Harness(app, runtime, cw, client, clock)
    await runtime.engine.dispose()
