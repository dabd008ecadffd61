"""Transactional outbox: write events with the state change, publish them after commit.

A service calls :func:`enqueue` inside the transaction that changes its state. The
:class:`OutboxRelay` publishes unsent rows in id order, keyed by aggregate id, through the
broker's idempotent producer (acks=all), and marks a row sent only after the broker confirmed
it. A crash between confirmation and marking re-publishes the row on restart; consumers drop
the duplicate by ``event_id``. On PostgreSQL one relay at a time holds an advisory lock for a
claim cycle, so several instances never publish a row twice and per-aggregate order holds; on
SQLite a claim cycle holds the database's write lock, to the same effect.

A relay publishes through the ``publish`` callable it is given (the service's broker), or,
for a high-volume service, through a :class:`KafkaOutboxProducer` of its own
(:meth:`OutboxRelay.use_producer`): plain aiokafka, idempotent with ``acks=all``, the rows of a
cycle handed to the producer one after the other (so per-key order holds: one partition per
key, one in-flight batch per partition) and every send confirmed before any row is marked.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlmodel import col

from cpu_shared.logging import get_logger
from cpu_shared.messaging.envelope import EventEnvelope, utcnow
from cpu_shared.messaging.tables import OutboxMessage

log = get_logger(__name__)

# Any fixed number: the relays of one service database contend for the same lock.
_RELAY_LOCK_KEY = 0x0C0_0A7B0
#: The backlog gauges are refreshed from the store at most this often while rows flow.
METRICS_REFRESH_SECONDS = 1.0


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


class KafkaOutboxProducer:
    """An idempotent aiokafka producer (``acks=all``) for a relay, without a framework's
    per-message layers: :meth:`publish` hands one record to aiokafka's accumulator and returns
    the future the broker's confirmation resolves. Started on first use, so a broker that is
    down when the service starts only fails the relay's first cycles (which are retried)."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str,
        linger_ms: int = 5,
        max_batch_size: int = 512 * 1024,
        **options: Any,
    ) -> None:
        self._options = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "enable_idempotence": True,  # implies acks=all and no duplicates from retries
            "acks": "all",
            "linger_ms": linger_ms,
            "max_batch_size": max_batch_size,
            **options,
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(**self._options)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            await self.start()
            assert self._producer is not None
        return self._producer

    @staticmethod
    def _headers(headers: dict[str, str]) -> list[tuple[str, bytes]]:
        # What the service's broker would send: an empty content type (raw bytes), and the
        # event id (also as the message's correlation id).
        return [
            ("content-type", b""),
            ("correlation_id", headers["event_id"].encode()),
            *((k, v.encode()) for k, v in headers.items()),
        ]

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        """One record; the future resolves when the broker has confirmed it."""
        producer = await self._started()
        return await producer.send(topic, value=value, key=key, headers=self._headers(headers))

    async def publish_many(
        self, records: Sequence[tuple[str, bytes, bytes, dict[str, str]]]
    ) -> list[asyncio.Future[Any]]:
        """Records ``(topic, key, value, headers)`` in their order, in record batches built
        here (one open batch per partition, sent as it fills), not one ``send`` each. A key
        goes to the partition aiokafka's default partitioner gives it (murmur2, as every
        Kafka client), and the batches of a partition are queued in order, so the records of
        one key keep their order. Every returned future must resolve before the records
        count as published."""
        producer = await self._started()
        futures: list[asyncio.Future[Any]] = []
        open_batches: dict[tuple[str, int], Any] = {}
        partitions_of: dict[str, list[int]] = {}
        partition_of: dict[tuple[str, bytes], int] = {}
        for topic, key, value, headers in records:
            partitions = partitions_of.get(topic)
            if partitions is None:
                partitions = partitions_of[topic] = sorted(await producer.partitions_for(topic))
            partition = partition_of.get((topic, key))
            if partition is None:
                partition = partition_of[(topic, key)] = _PARTITIONER(key, partitions, partitions)
            batch = open_batches.get((topic, partition))
            if batch is None:
                batch = open_batches[(topic, partition)] = producer.create_batch()
            record = {"timestamp": None, "key": key, "value": value}
            if batch.append(**record, headers=self._headers(headers)) is None:  # full
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[(topic, partition)] = producer.create_batch()
                if batch.append(**record, headers=self._headers(headers)) is None:
                    raise MessageSizeTooLargeError("an outbox record is larger than a batch")
        for (topic, partition), batch in open_batches.items():
            if batch.record_count():
                futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures


_PARTITIONER = DefaultPartitioner()
_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]


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
        self._publish = publish
        self._service = service
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_interval = idle_interval
        self._max_backoff = max_backoff
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._is_postgres = engine.dialect.name == "postgresql"
        self._producer: KafkaOutboxProducer | None = None
        self._lock_held_elsewhere = False
        self._metrics_due = 0.0
        self._min_cycle_interval = 0.0

    def use_producer(
        self,
        producer: KafkaOutboxProducer,
        *,
        batch_size: int | None = None,
        min_cycle_interval: float | None = None,
    ) -> None:
        """Publish through ``producer`` (started on first use, stopped when the relay stops)
        instead of the ``publish`` callable; optionally claim ``batch_size`` rows a cycle,
        and start a cycle that follows one which published at most every
        ``min_cycle_interval`` seconds (a cycle costs about the same for one row as for
        hundreds: at a high rate, rows wait that long at most to go out together)."""
        self._producer = producer
        self._publish = producer.publish
        if batch_size is not None:
            self._batch_size = batch_size
        if min_cycle_interval is not None:
            self._min_cycle_interval = min_cycle_interval

    def notify(self) -> None:
        """Wake the relay early: a transaction just committed outbox rows."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self._producer is not None:
                await self._producer.stop()

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            # Cleared before the claim, so a commit during the cycle wakes the next one.
            self._wakeup.clear()
            started = time.monotonic()
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
                await self._pause(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if self._lock_held_elsewhere:
                # Another instance is publishing: look again after the interval, not on
                # each of this instance's commits (each retry would be a wasted round trip).
                await self._pause(self._idle_interval)
            elif sent < self._batch_size:
                await self._wait(self._idle_interval)
                if sent and self._min_cycle_interval:
                    rest = started + self._min_cycle_interval - time.monotonic()
                    if rest > 0:
                        await self._pause(rest)

    async def _wait(self, seconds: float) -> None:
        """Until a commit notifies (or has since the cycle began), at most ``seconds``."""
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _pause(self, seconds: float) -> None:
        """``seconds``, or less if the relay is stopped."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def publish_pending(self) -> int:
        """One claim cycle: publish up to ``batch_size`` rows. Returns how many were sent."""
        # A plain connection, not an ORM session: nothing here needs the ORM's bookkeeping.
        async with self._engine.begin() as session:
            if self._is_postgres:
                got = await session.execute(
                    sa.select(sa.func.pg_try_advisory_xact_lock(_RELAY_LOCK_KEY))
                )
                self._lock_held_elsewhere = not got.scalar()
                if self._lock_held_elsewhere:
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
                # Nothing unsent is visible (no other relay holds rows: the lock is ours):
                # the backlog is empty without counting it.
                if self._metrics:
                    self._metrics.backlog.set(0)
                    self._metrics.oldest_age.set(0)
                return 0
            if self._producer is not None:
                futures = await self._producer.publish_many(
                    [
                        (r.topic, r.message_key.encode(), r.payload, {"event_id": str(r.event_id)})
                        for r in rows
                    ]
                )
            else:
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
            ids = [r.id for r in rows]
            if self._is_postgres:  # one array parameter, not one parameter per row
                where = col(OutboxMessage.id) == sa.func.any(
                    sa.bindparam("ids", ids, type_=postgresql.ARRAY(sa.BigInteger()))
                )
            else:
                where = col(OutboxMessage.id).in_(ids)
            await session.execute(sa.update(_OUTBOX).where(where).values(sent_at=utcnow()))
            if self._metrics:
                for topic, count in Tally(row.topic for row in rows).items():
                    self._metrics.published.labels(self._service, topic).inc(count)
                if time.monotonic() >= self._metrics_due:
                    await self._refresh_metrics(session)
        return len(rows)

    async def _refresh_metrics(self, session: AsyncConnection) -> None:
        """The backlog gauges, from a count of unsent rows: at most once a second, since at
        a high rate it would otherwise run on every cycle."""
        if not self._metrics:
            return
        self._metrics_due = time.monotonic() + METRICS_REFRESH_SECONDS
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
