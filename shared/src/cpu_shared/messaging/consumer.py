"""Idempotent, explicitly acknowledged event consumers with retries and dead letters.

The offset of a message is committed only after the transaction holding its effect and its
inbox row has committed. faststream's ``msg.ack()`` commits every position the consumer has
read, so a failed message can never be skipped and left behind: it is retried in place with
backoff (a transient failure, such as the database being down, forever; anything else a few
times) or dead-lettered to ``<topic>.dlq`` with the reason, and only then acknowledged.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from cpu_shared.logging import correlation_id, get_logger
from cpu_shared.messaging.dead_letters import DeadLetterHeaders, dead_letter_headers
from cpu_shared.messaging.envelope import EventEnvelope, utcnow
from cpu_shared.messaging.tables import InboxEntry
from cpu_shared.messaging.topics import dead_letter_topic

log = get_logger(__name__)


class InvalidEvent(Exception):
    """The message can never be processed as it is: dead-letter it at once.

    The message text becomes the DLQ reason header: codes and field names only, no values.
    """


class ShutdownRequested(Exception):
    """Raised inside a retry loop when the process is stopping: leave the offset uncommitted."""


EventHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]
Decoder = Callable[[ConsumerRecord], Any]


def decode_envelope(record: ConsumerRecord) -> EventEnvelope:
    return EventEnvelope.from_bytes(record.value)


def envelope_event_id(item: EventEnvelope) -> str:
    return str(item.event_id)


def describe_validation_error(exc: ValidationError) -> str:
    """A reason naming the fields and the rule broken, never the submitted values."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False)[:10]:
        loc = ".".join(str(p) for p in err["loc"]) or "message"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def is_transient(exc: BaseException) -> bool:
    """Failures that fix themselves (store or broker unreachable): retry, never dead-letter."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, ConnectionError | TimeoutError | OSError | KafkaError):
        return True
    name = type(exc).__name__
    return name in {
        "PostgresConnectionError",
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "TooManyConnectionsError",
        "AdminShutdownError",
    }


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["topic", "group"]
        self.consumed = Counter("cpu_events_consumed", "Events applied", labels, registry=registry)
        self.failed = Counter(
            "cpu_events_failed", "Handler attempts that failed", labels, registry=registry
        )
        self.dead_lettered = Counter(
            "cpu_events_dead_lettered", "Events sent to the DLQ", labels, registry=registry
        )
        self.deduplicated = Counter(
            "cpu_events_deduplicated", "Redelivered events ignored", labels, registry=registry
        )
        self.latency = Histogram(
            "cpu_event_handler_seconds",
            "Time to apply a message or batch",
            labels,
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


@dataclass
class RetryPolicy:
    """Backoff between attempts; non-transient failures get ``max_attempts`` before the DLQ."""

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 30.0

    def delay(self, attempt: int) -> float:
        base = min(self.max_backoff, self.initial_backoff * (2 ** max(0, attempt - 1)))
        return base * (0.75 + random.random() / 2)


@dataclass
class EventConsumer:
    """One consumer group on one topic, applying each message once.

    ``handle`` receives a session inside the transaction that will also record the inbox row;
    whatever it writes (state, outbox rows) commits together with it.
    """

    topic: str
    group_id: str
    handle: Callable[[AsyncSession, Any], Awaitable[None]]
    sessions: async_sessionmaker[AsyncSession]
    metrics: ConsumerMetrics
    stopping: asyncio.Event
    decode: Decoder = decode_envelope
    event_id_of: Callable[[Any], str] = envelope_event_id
    batch: bool = False
    max_records: int = 500
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_committed: Callable[[], None] | None = None
    broker: KafkaBroker | None = None
    # For high volume: called once per batch with the events not yet applied, in order.
    handle_batch: Callable[[AsyncSession, list[Any]], Awaitable[None]] | None = None
    # How long the broker may hold a fetch waiting for data; aiokafka's 500 ms default adds
    # up to half a second to every hop of a quiet pipeline.
    fetch_max_wait_ms: int = 100

    def register(self, broker: KafkaBroker | KafkaRouter) -> None:
        """Attach to a broker or router with explicit acknowledgement."""
        if isinstance(broker, KafkaBroker):
            self.broker = broker
        options: dict[str, Any] = {
            "group_id": self.group_id,
            "ack_policy": AckPolicy.MANUAL,
            "auto_offset_reset": "earliest",
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
            "title": f"{self.group_id}:{self.topic}",
            "description": f"Consumer group {self.group_id}: applies each event of "
            f"{self.topic} once, commits after its transaction, dead-letters to "
            f"{dead_letter_topic(self.topic)}.",
        }
        if self.batch:
            sub = broker.subscriber(
                self.topic,
                batch=True,
                max_records=self.max_records,
                batch_timeout_ms=100,
                **options,
            )
        else:
            sub = broker.subscriber(self.topic, **options)

        async def on_message(msg: KafkaMessage) -> None:
            raw = msg.raw_message
            records = list(raw) if isinstance(raw, tuple | list) else [raw]
            await self.process(records)
            await self._ack(msg)

        sub(on_message)

    async def _ack(self, msg: KafkaMessage) -> None:
        try:
            await msg.ack()
        except Exception as exc:  # a rebalance can refuse the commit; redelivery is harmless
            log.warning(
                "offset commit failed; messages will be redelivered and deduplicated",
                topic=self.topic,
                group=self.group_id,
                error=type(exc).__name__,
            )

    # -- processing ---------------------------------------------------------------------------

    async def process(self, records: Sequence[ConsumerRecord]) -> None:
        """Apply records, dead-letter what cannot be applied. Returns only when all are settled."""
        decoded: list[tuple[ConsumerRecord, Any]] = []
        for record in records:
            try:
                decoded.append((record, self.decode(record)))
            except ValidationError as exc:
                await self._dead_letter(record, describe_validation_error(exc), exc)
            except (InvalidEvent, ValueError, UnicodeDecodeError) as exc:
                await self._dead_letter(record, _reason(exc), exc)
        if not decoded:
            return
        if len(decoded) == 1:
            await self._apply_with_retries(decoded)
            return
        try:
            await self._apply_with_retries(decoded, isolate_on_failure=True)
        except _NeedsIsolation:
            # One bad event must not hold back the others: apply them one by one.
            for item in decoded:
                await self._apply_with_retries([item])

    async def _apply_with_retries(
        self, items: list[tuple[ConsumerRecord, Any]], isolate_on_failure: bool = False
    ) -> None:
        attempt = 0
        first_failed_at: datetime | None = None
        while True:
            if self.stopping.is_set():
                raise ShutdownRequested
            started = time.perf_counter()
            try:
                await self._apply(items)
                self.metrics.latency.labels(self.topic, self.group_id).observe(
                    time.perf_counter() - started
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.failed.labels(self.topic, self.group_id).inc()
                first_failed_at = first_failed_at or utcnow()
                if is_transient(exc):
                    delay = self.retry.delay(min(attempt + 1, 10))
                    log.warning(
                        "transient failure; retrying",
                        topic=self.topic,
                        group=self.group_id,
                        error=type(exc).__name__,
                        backoff_s=round(delay, 2),
                    )
                    attempt += 1
                    await self._backoff(delay)
                    continue
                if isolate_on_failure:
                    raise _NeedsIsolation from exc
                if isinstance(exc, InvalidEvent | ValidationError):
                    await self._dead_letter(items[0][0], _reason(exc), exc, first_failed_at)
                    return
                attempt += 1
                if attempt >= self.retry.max_attempts:
                    await self._dead_letter(
                        items[0][0],
                        f"handler failed {attempt} times: {type(exc).__name__}",
                        exc,
                        first_failed_at,
                    )
                    return
                log.warning(
                    "handler failed; retrying",
                    topic=self.topic,
                    group=self.group_id,
                    error=type(exc).__name__,
                    attempt=attempt,
                )
                await self._backoff(self.retry.delay(attempt))

    async def _backoff(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=delay)
        except TimeoutError:
            return
        raise ShutdownRequested

    async def _apply(self, items: list[tuple[ConsumerRecord, Any]]) -> None:
        ids = [self.event_id_of(item) for _, item in items]
        async with self.sessions() as session, session.begin():
            postgres = session.get_bind().dialect.name == "postgresql"
            seen = await self._seen(session, ids, postgres)
            now = utcnow()
            fresh: list[tuple[Any, str]] = []
            for (_record, item), event_id in zip(items, ids, strict=True):
                if event_id not in seen:
                    seen.add(event_id)
                    fresh.append((item, event_id))
            duplicates = len(items) - len(fresh)
            if self.handle_batch is not None and fresh:
                await self.handle_batch(session, [item for item, _ in fresh])
            else:
                for item, _ in fresh:
                    token = correlation_id.set(getattr(item, "correlation_id", None))
                    try:
                        await self.handle(session, item)
                    finally:
                        correlation_id.reset(token)
            if fresh:
                await self._record(session, [event_id for _, event_id in fresh], now, postgres)
        if self.on_committed:
            self.on_committed()
        if duplicates:
            self.metrics.deduplicated.labels(self.topic, self.group_id).inc(duplicates)
        applied = len(items) - duplicates
        if applied:
            self.metrics.consumed.labels(self.topic, self.group_id).inc(applied)

    async def _seen(self, session: AsyncSession, ids: list[str], postgres: bool) -> set[str]:
        """The ids among ``ids`` this group has already applied."""
        if postgres:  # one array parameter, whatever the batch size
            result = await session.execute(_INBOX_SEEN, {"group": self.group_id, "ids": ids})
        else:
            result = await session.execute(
                sa.select(col(InboxEntry.event_id)).where(
                    col(InboxEntry.consumer_group) == self.group_id,
                    col(InboxEntry.event_id).in_(ids),
                )
            )
        return set(result.scalars())

    async def _record(
        self, session: AsyncSession, ids: list[str], now: datetime, postgres: bool
    ) -> None:
        """The inbox rows of the applied ids: one statement on PostgreSQL (an array
        unnested), where an executemany costs the server one insert per row."""
        if postgres:
            await session.execute(
                _INBOX_RECORD,
                {"group": self.group_id, "ids": ids, "topic": self.topic, "now": now},
            )
            return
        await session.execute(
            sa.insert(InboxEntry),
            [
                {
                    "consumer_group": self.group_id,
                    "event_id": event_id,
                    "topic": self.topic,
                    "processed_at": now,
                }
                for event_id in ids
            ],
        )

    async def _dead_letter(
        self,
        record: ConsumerRecord,
        reason: str,
        exc: BaseException,
        first_failed_at: datetime | None = None,
    ) -> None:
        headers = dead_letter_headers(
            record,
            DeadLetterHeaders(
                reason=reason,
                exception_type=type(exc).__name__,
                consumer_group=self.group_id,
                first_failed_at=first_failed_at or utcnow(),
            ),
        )
        assert self.broker is not None, "register() the consumer on a broker first"
        attempt = 0
        while True:
            try:
                await self.broker.publish(
                    record.value,
                    topic=dead_letter_topic(record.topic),
                    key=record.key,
                    headers=headers,
                )
                break
            except Exception as exc2:
                # The DLQ write must succeed before the offset moves on: retry until it does.
                attempt += 1
                log.warning(
                    "dead-letter publish failed; retrying",
                    topic=record.topic,
                    error=type(exc2).__name__,
                )
                await self._backoff(self.retry.delay(min(attempt, 10)))
        self.metrics.dead_lettered.labels(self.topic, self.group_id).inc()
        log.error(
            "message dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            group=self.group_id,
            reason=reason,
            exception_type=type(exc).__name__,
        )


class _NeedsIsolation(Exception):
    pass


# A join with the unnested array, not ``= ANY(:ids)``: with a generic plan PostgreSQL may scan
# the whole inbox and compare each row with every id of the array.
_INBOX_SEEN = sa.text(
    "SELECT inbox.event_id FROM unnest(CAST(:ids AS varchar[])) AS ids(event_id) "
    "JOIN inbox ON inbox.consumer_group = :group AND inbox.event_id = ids.event_id"
).bindparams(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String())))
_INBOX_RECORD = sa.text(
    "INSERT INTO inbox (consumer_group, event_id, topic, processed_at) "
    "SELECT :group, ids.event_id, :topic, :now FROM unnest(CAST(:ids AS varchar[])) "
    "AS ids(event_id)"
).bindparams(
    sa.bindparam("ids", type_=postgresql.ARRAY(sa.String())),
    sa.bindparam("now", type_=sa.DateTime(timezone=True)),
)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return describe_validation_error(exc)
    if isinstance(exc, InvalidEvent):
        return str(exc)[:500]
    # Exception texts may quote data; keep only the type for anything not ours.
    return f"undecodable message: {type(exc).__name__}"


__all__ = [
    "UTC",
    "ConsumerMetrics",
    "EventConsumer",
    "EventHandler",
    "InvalidEvent",
    "RetryPolicy",
    "ShutdownRequested",
    "describe_validation_error",
    "is_transient",
]
