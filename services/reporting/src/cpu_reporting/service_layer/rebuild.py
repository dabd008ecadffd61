"""Recomputing the projection from the topics, from offset 0.

A consumer with no group (nothing committed, nothing to disturb) is assigned every partition of
the four event topics, reads from the beginning to the end offsets taken at the start, and folds
every event in memory with the same rules as the live consumers (:func:`.projector.accept`,
:func:`.projector.fold`): deny-listed or invalid events are left out and counted. Then, in one
transaction that holds the projection's write lock (so the live consumers wait), it reads what
arrived meanwhile up to the new end offsets, empties the projection tables and fills them with
the recomputed facts and figures. Readers see the old figures until the commit and the new ones
after: no mix, no double count. Live consumers then go on from their committed offsets; events
they apply again are already in the facts and add nothing.

Memory: the facts of every aggregate are held while reading (a few hundred bytes per case).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from cpu_reporting.adapters.store import (
    AggregateKey,
    RollupRows,
    facts_row,
    replace_all,
    take_write_lock,
)
from cpu_reporting.config import ReportingSettings
from cpu_reporting.domain.contributions import contribute
from cpu_reporting.domain.facts import Facts, aggregate_of, new_facts
from cpu_reporting.entrypoints.stream import SUBSCRIPTIONS
from cpu_reporting.service_layer.projector import accept, fold
from cpu_shared.db import apply_migrations, create_engine, session_factory
from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.messaging.dead_letters import topic_partitions
from cpu_shared.messaging.envelope import EventEnvelope

Progress = Callable[[int, int], None]  # (events read so far, events to read)


@dataclass
class RebuildResult:
    read: int = 0
    applied: int = 0
    ignored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    aggregates: int = 0
    seconds: float = 0.0
    read_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


class Rebuilder:
    def __init__(self, settings: ReportingSettings, *, fetch_records: int = 5000) -> None:
        self.settings = settings
        self.fetch_records = fetch_records
        self.facts: dict[AggregateKey, Facts] = {}
        self.result = RebuildResult()

    def apply_record(self, value: bytes | None) -> None:
        result = self.result
        result.read += 1
        try:
            envelope = EventEnvelope.model_validate_json(value or b"")
            data = accept(envelope)
            if data is None or (key := aggregate_of(data)) is None:
                result.ignored += 1
                return
            facts = self.facts.get(key)
            if facts is None:
                facts = self.facts[key] = new_facts(*key)
            fold(facts, data, envelope.aggregate_version, str(envelope.event_id))
        except InvalidEvent as exc:
            result.rejected[str(exc).split(":", 1)[0]] += 1
            return
        except ValidationError:
            result.rejected["contract"] += 1
            return
        except ValueError:
            result.rejected["undecodable"] += 1
            return
        result.applied += 1

    async def _read_until(
        self,
        consumer: AIOKafkaConsumer,
        ends: dict[TopicPartition, int],
        total: int,
        progress: Progress | None,
    ) -> None:
        pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
        while pending:
            batch = await consumer.getmany(
                *pending, timeout_ms=1000, max_records=self.fetch_records
            )
            for tp, records in batch.items():
                end = ends[tp]
                for record in records:
                    if record.offset < end:
                        self.apply_record(record.value)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
            if progress is not None:
                progress(self.result.read, max(total, self.result.read))

    async def run(self, progress: Progress | None = None) -> RebuildResult:
        settings = self.settings
        started = time.perf_counter()
        await apply_migrations("cpu_reporting.migrations", settings.database_url)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        engine = create_engine(settings.database_url)
        await consumer.start()
        try:
            tps = [
                TopicPartition(topic.name, p)
                for topic, _ in SUBSCRIPTIONS
                for p in await topic_partitions(settings.kafka_bootstrap_servers, topic.name)
            ]
            if tps:
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                begins = await consumer.beginning_offsets(tps)
                ends = await consumer.end_offsets(tps)
                total = sum(ends[tp] - begins[tp] for tp in tps)
                if progress is not None:
                    progress(0, total)
                await self._read_until(consumer, ends, total, progress)
            self.result.read_seconds = time.perf_counter() - started
            sessions = session_factory(engine)
            async with sessions() as session, session.begin():
                await take_write_lock(session)
                if tps:
                    # What the live consumers applied while we read is below these offsets.
                    later = await consumer.end_offsets(tps)
                    extra = sum(later[tp] - ends[tp] for tp in tps)
                    await self._read_until(consumer, later, total + extra, progress)
                rows = RollupRows()
                fact_rows = []
                for (kind, _), facts in self.facts.items():
                    contribute(facts, rows)
                    fact_rows.append(facts_row(kind, facts))
                await replace_all(session, fact_rows, rows)
        finally:
            await consumer.stop()
            await engine.dispose()
        self.result.aggregates = len(self.facts)
        self.result.seconds = time.perf_counter() - started
        return self.result


async def rebuild(settings: ReportingSettings, progress: Progress | None = None) -> RebuildResult:
    return await Rebuilder(settings).run(progress)
