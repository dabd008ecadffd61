"""Transactional outbox: write events with the state change, publish them after commit.

A service calls :func:`enqueue` inside the transaction that changes its state. The
:class:`OutboxRelay` publishes unsent rows in id order, keyed by aggregate id, through the
broker's idempotent producer (acks=all), and marks a row sent only after the broker confirmed
it. A crash between confirmation and marking re-publishes the row on restart; consumers drop
the duplicate by ``event_id``. On PostgreSQL one relay at a time holds an advisory lock for a
claim cycle, so several instances never publish a row twice and per-aggregate order holds; on
SQLite a claim cycle holds the database's write lock, to the same effect.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from cpu_shared.logging import get_logger
from cpu_shared.messaging.envelope import EventEnvelope, utcnow
from cpu_shared.messaging.tables import OutboxMessage

log = get_logger(__name__)

# Any fixed number: the relays of one service database contend for the same lock.
_RELAY_LOCK_KEY = 0x0C0_0A7B0


def enqueue(session: AsyncSession, topic: str, envelope: EventEnvelope) -> None:
    """Add an event to the outbox in the caller's transaction."""
    session.add(
        OutboxMessage(
            event_id=envelope.event_id,
            topic=topic,
            message_key=envelope.aggregate_id,
            payload=envelope.to_bytes(),
            created_at=utcnow(),
        )
    )


Publish = Callable[[str, bytes, bytes, dict[str, str]], Awaitable["asyncio.Future[Any]"]]


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.backlog = Gauge(
            "cpu_outbox_backlog",
            "Outbox rows not yet confirmed by the broker",
            ["service"],
            registry=registry,
        ).labels(service)
        self.oldest_age = Gauge(
            "cpu_outbox_oldest_age_seconds",
            "Age of the oldest unsent outbox row",
            ["service"],
            registry=registry,
        ).labels(service)
        self.published = Counter(
            "cpu_outbox_published",
            "Outbox rows published and confirmed",
            ["service", "topic"],
            registry=registry,
        )
        self.failures = Counter(
            "cpu_outbox_publish_failures",
            "Relay cycles that failed to publish",
            ["service"],
            registry=registry,
        ).labels(service)


class OutboxRelay:
    """Publishes outbox rows until stopped. Survives broker and database outages by retrying."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        publish: Publish,
        service: str,
        metrics: OutboxMetrics | None = None,
        batch_size: int = 500,
        idle_interval: float = 0.05,
        max_backoff: float = 10.0,
    ) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        self._publish = publish
        self._service = service
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_interval = idle_interval
        self._max_backoff = max_backoff
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._is_postgres = engine.dialect.name == "postgresql"

    def notify(self) -> None:
        """Wake the relay early: a transaction just committed outbox rows."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                sent = await self.publish_pending()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._metrics:
                    self._metrics.failures.inc()
                log.warning(
                    "outbox relay cycle failed; retrying",
                    error=type(exc).__name__,
                    backoff_s=round(backoff, 2),
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if sent == 0:
                await self._sleep(self._idle_interval)

    async def _sleep(self, seconds: float) -> None:
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def publish_pending(self) -> int:
        """One claim cycle: publish up to ``batch_size`` rows. Returns how many were sent."""
        async with self._sessions() as session, session.begin():
            if self._is_postgres:
                got = await session.execute(
                    sa.select(sa.func.pg_try_advisory_xact_lock(_RELAY_LOCK_KEY))
                )
                if not got.scalar():
                    return 0
            else:
                # SQLite has no row locks: a no-op write takes the database's write lock first,
                # so a second relay waits here and then sees the rows this one marked sent.
                await session.execute(sa.text("UPDATE outbox SET sent_at = sent_at WHERE 0"))
            query = (
                sa.select(
                    col(OutboxMessage.id),
                    col(OutboxMessage.topic),
                    col(OutboxMessage.message_key),
                    col(OutboxMessage.payload),
                    col(OutboxMessage.event_id),
                )
                .where(col(OutboxMessage.sent_at).is_(None))
                .order_by(col(OutboxMessage.id))
                .limit(self._batch_size)
            )
            if self._is_postgres:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if not rows:
                await self._refresh_metrics(session)
                return 0
            futures = []
            for row in rows:
                futures.append(
                    await self._publish(
                        row.topic,
                        row.message_key.encode(),
                        row.payload,
                        {"event_id": str(row.event_id)},
                    )
                )
            # Every send must be confirmed (acks=all) before any row is marked sent.
            await asyncio.gather(*futures)
            await session.execute(
                sa.update(OutboxMessage)
                .where(OutboxMessage.id.in_([r.id for r in rows]))  # type: ignore[union-attr]
                .values(sent_at=utcnow())
            )
            if self._metrics:
                for row in rows:
                    self._metrics.published.labels(self._service, row.topic).inc()
                await self._refresh_metrics(session)
        return len(rows)

    async def _refresh_metrics(self, session: AsyncSession) -> None:
        if not self._metrics:
            return
        count, oldest = (
            await session.execute(
                sa.select(sa.func.count(), sa.func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.sent_at.is_(None)  # type: ignore[union-attr]
                )
            )
        ).one()
        self._metrics.backlog.set(count)
        if oldest is None:
            self._metrics.oldest_age.set(0)
        else:
            if oldest.tzinfo is None:  # SQLite returns naive datetimes
                from datetime import UTC

                oldest = oldest.replace(tzinfo=UTC)
            self._metrics.oldest_age.set(max(0.0, time.time() - oldest.timestamp()))
