"""A forensics app on its own fresh PostgreSQL database, driven in-process.

The app is built by ``create_app`` exactly as the service process builds it, but its lifespan
is not run: no broker connection, no outbox relay, so what a handler publishes stays in the
outbox table where the tests read it. Case events are delivered through the service's own
``EventConsumer`` (inbox and all), the same code path the broker feeds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord
from fastapi import FastAPI

from cpu_forensics.app import create_app
from cpu_forensics.config import ForensicsSettings
from cpu_forensics.service_layer.context import Forensics
from cpu_platform.testing.kafka_tools import bearer
from cpu_shared.contracts import EventData, new_envelope
from cpu_shared.db import apply_migrations
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.tables import OutboxMessage
from cpu_shared.messaging.topics import CASE_EVENTS
from cpu_shared.service import ServiceRuntime


class Clock:
    """The service's clock, moved by the tests."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass
class Harness:
    app: FastAPI
    runtime: ServiceRuntime
    fx: Forensics
    client: httpx.AsyncClient
    clock: Clock
    database_url: str
    settings: ForensicsSettings
    versions: dict[str, int] = field(default_factory=dict)

    # -- the API -----------------------------------------------------------------------------

    @staticmethod
    def token(*roles: str, user: str = "officer", **claims: Any) -> dict[str, str]:
        return bearer(*roles, user=user, **claims)

    @staticmethod
    def officer(user: str) -> dict[str, str]:
        """A forensic officer of the Forensic Science Team (sees every exhibit)."""
        return bearer("forensic_officer", user=user, teams=["FST"])

    def item_body(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "case_id": str(uuid.uuid4()),
            "type": "clothing",
            "description": "Child's blue school shirt, blood-stained collar",
            "collected_at": iso(self.clock() - timedelta(hours=2)),
            "collected_location": "Victim's home, Sangkat Boeung Kak, Phnom Penh",
            "seal_number": "SEAL-2025-000101",
            "storage_location": "FST store, shelf B3",
        }
        body.update(overrides)
        return body

    async def register(self, user: str = "fo.dara", **overrides: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/evidence",
            json=self.item_body(**overrides),
            headers=self.officer(user),
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def hand_over(
        self, item_id: str, giver: str, receiver: str, kind: str = "transfer", **extra: Any
    ) -> httpx.Response:
        body = {
            "kind": kind,
            "to_user": receiver,
            "purpose": "DNA analysis of the collar",
            "location": "National police lab, intake desk",
            **extra,
        }
        return await self.client.post(
            f"/api/v1/evidence/{item_id}/transfers",
            json=body,
            headers=self.officer(giver),
        )

    async def accept(
        self, item_id: str, transfer_id: str, receiver: str, **body: Any
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/evidence/{item_id}/transfers/{transfer_id}/accept",
            json=body,
            headers=self.officer(receiver),
        )

    async def move(
        self, item_id: str, giver: str, receiver: str, kind: str = "transfer", **extra: Any
    ) -> dict[str, Any]:
        """A whole two-step handover; returns the accepted step's answer."""
        self.clock.advance(minutes=5)
        requested = await self.hand_over(item_id, giver, receiver, kind, **extra)
        assert requested.status_code == 201, requested.text
        self.clock.advance(minutes=5)
        accepted = await self.accept(item_id, requested.json()["id"], receiver)
        assert accepted.status_code == 200, accepted.text
        return accepted.json()

    # -- events ------------------------------------------------------------------------------

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

    async def deliver_case_events(self, *envelopes: EventEnvelope) -> None:
        consumer = next(c for c in self.runtime.consumers if c.topic == CASE_EVENTS.name)
        for offset, env in enumerate(envelopes):
            raw = env.to_bytes()
            record = ConsumerRecord(
                topic=CASE_EVENTS.name,
                partition=0,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=env.aggregate_id.encode(),
                value=raw,
                checksum=None,
                serialized_key_size=len(env.aggregate_id),
                serialized_value_size=len(raw),
                headers=(),
            )
            await consumer.process([record])

    # -- the store ---------------------------------------------------------------------------

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.runtime.engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())

    async def execute_as_owner(self, *statements: str, **params: Any) -> None:
        """What an intruder with the database owner's rights can do: triggers off, then SQL."""
        async with self.runtime.engine.begin() as conn:
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            for statement in statements:
                await conn.execute(sa.text(statement), params)

    async def outbox(self) -> list[EventEnvelope]:
        async with self.runtime.sessions() as session:
            rows = await session.execute(sa.select(OutboxMessage).order_by(OutboxMessage.id))
            return [EventEnvelope.from_bytes(row.payload) for row in rows.scalars()]


@pytest.fixture
async def forensics(make_database: Callable[[str], str], tmp_path: Path) -> AsyncIterator[Harness]:
    url = make_database("forensics")
    await apply_migrations("cpu_forensics.migrations", url)
    settings = ForensicsSettings(
        database_url=url,
        kafka_bootstrap_servers="127.0.0.1:9",
        run_migrations=False,
        ledger_signing_key_file=tmp_path / "ledger-signing-key.pem",
    )
    app = create_app(settings)
    runtime: ServiceRuntime = app.state.runtime
    fx: Forensics = app.state.forensics
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    fx.clock = clock
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://forensics") as client:
        yield Harness(app, runtime, fx, client, clock, url, settings)
    await runtime.engine.dispose()
