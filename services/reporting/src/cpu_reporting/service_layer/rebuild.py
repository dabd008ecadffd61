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

Reading and folding is shared out: the partitions are split into shares of about the same
number of events, and each share but the first is read and folded by a forked process of its
own (``REPORTING_REBUILD_PROCESSES``, one per CPU by default), which sends its facts back.
An aggregate's events may lie in several shares (a case's evidence events are on another
topic): folding is a join of the facts, so merging the shares' facts (:func:`merge_facts`)
gives the facts of folding everything in one place.

Memory: the facts of every aggregate are held while reading (a few hundred bytes per case).
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

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
from cpu_reporting.domain.facts import Facts, aggregate_of, merge_facts, new_facts
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
    shares: int = 1  # processes that read and folded

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


def split_partitions(counts: dict[TopicPartition, int], shares: int) -> list[list[TopicPartition]]:
    """Partitions in at most ``shares`` shares of about the same number of events (largest
    first, each to the lightest share); partitions with nothing to read go to the first."""
    busy = sorted((tp for tp, n in counts.items() if n > 0), key=lambda tp: (-counts[tp], tp))
    out: list[list[TopicPartition]] = [[] for _ in range(max(1, min(shares, len(busy))))]
    load = [0] * len(out)
    for tp in busy:
        lightest = load.index(min(load))
        out[lightest].append(tp)
        load[lightest] += counts[tp]
    out[0].extend(tp for tp, n in counts.items() if n <= 0)
    return out


@dataclass
class _Share:
    """A forked process reading and folding one share of the partitions."""

    process: BaseProcess
    receiver: Connection


class Rebuilder:
    def __init__(
        self,
        settings: ReportingSettings,
        *,
        fetch_records: int = 5000,
        processes: int | None = None,
    ) -> None:
        self.settings = settings
        self.fetch_records = fetch_records
        self.facts: dict[AggregateKey, Facts] = {}
        self.result = RebuildResult()
        wanted = settings.rebuild_processes if processes is None else processes
        self.processes = wanted or os.cpu_count() or 1
        if "fork" not in multiprocessing.get_all_start_methods():
            self.processes = 1

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )

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

    # -- a share, in a forked process ----------------------------------------------------------

    def _fork(self, share: list[TopicPartition], ends: dict[TopicPartition, int]) -> _Share:
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=self._share_main, args=(sender, share, ends), name="rebuild-share", daemon=True
        )
        process.start()
        sender.close()
        return _Share(process, receiver)

    def _share_main(
        self, sender: Connection, share: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> None:
        """The forked process: read and fold the share, send (facts, result) back. Its event
        loop runs in a new thread, which has none running (this thread was forked from
        inside the parent's); the parent's connections are never touched, and the process
        ends without finalising them (multiprocessing ends a forked child with os._exit)."""
        self.facts, self.result = {}, RebuildResult()
        payload: Any = None

        def read() -> None:
            nonlocal payload
            try:
                asyncio.run(self._read_share(share, ends))
                payload = (self.facts, self.result)
            except BaseException as exc:  # reported to the parent, which fails the rebuild
                payload = RuntimeError(f"rebuild share {[str(tp) for tp in share]}: {exc!r}")

        thread = threading.Thread(target=read, name="rebuild-share")
        thread.start()
        thread.join()
        sender.send(payload)
        sender.close()

    async def _read_share(
        self, share: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> None:
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign(share)
            await consumer.seek_to_beginning(*share)
            await self._read_until(consumer, {tp: ends[tp] for tp in share}, 0, None)
        finally:
            await consumer.stop()

    async def _merge_share(self, share: _Share) -> None:
        loop = asyncio.get_running_loop()
        try:
            payload = await loop.run_in_executor(None, share.receiver.recv)
        except EOFError:
            payload = RuntimeError(f"a rebuild share ended without its facts ({share.process})")
        finally:
            share.receiver.close()
        await loop.run_in_executor(None, share.process.join)
        if isinstance(payload, BaseException):
            raise payload
        facts, result = payload
        for key, other in facts.items():
            held = self.facts.get(key)
            if held is None:
                self.facts[key] = other
            else:
                merge_facts(held, other)
        mine = self.result
        mine.read += result.read
        mine.applied += result.applied
        mine.ignored += result.ignored
        mine.rejected.update(result.rejected)

    # -- the whole rebuild -------------------------------------------------------------------

    async def run(self, progress: Progress | None = None) -> RebuildResult:
        # The rebuild builds a large heap of long-lived facts without cycles: the collector's
        # full passes over it cost more than the folding (and three times the unpickling of a
        # share's facts), and find nothing. Back on when done.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return await self._run(progress)
        finally:
            if collecting:
                gc.enable()

    async def _run(self, progress: Progress | None) -> RebuildResult:
        settings = self.settings
        started = time.perf_counter()
        await apply_migrations("cpu_reporting.migrations", settings.database_url)
        consumer = self._consumer()
        engine = create_engine(settings.database_url)
        await consumer.start()
        forked: list[_Share] = []
        try:
            tps = [
                TopicPartition(topic.name, p)
                for topic, _ in SUBSCRIPTIONS
                for p in await topic_partitions(settings.kafka_bootstrap_servers, topic.name)
            ]
            if tps:
                begins = await consumer.beginning_offsets(tps)
                ends = await consumer.end_offsets(tps)
                counts = {tp: ends[tp] - begins[tp] for tp in tps}
                total = sum(counts.values())
                shares = split_partitions(counts, self.processes)
                self.result.shares = len(shares)
                forked = [self._fork(share, ends) for share in shares[1:]]
                own = shares[0]
                own_total = sum(counts[tp] for tp in own) or 1
                if progress is not None:
                    progress(0, total)

                def own_progress(done: int, _: int) -> None:
                    # Shares advance alike: show this one's progress as the whole's.
                    if progress is not None:
                        progress(min(total, done * total // own_total), total)

                consumer.assign(own)
                await consumer.seek_to_beginning(*own)
                await self._read_until(consumer, {tp: ends[tp] for tp in own}, total, own_progress)
                while forked:
                    await self._merge_share(forked.pop(0))
                # Every partition goes on from the end its share read to.
                consumer.assign(tps)
                for tp in tps:
                    consumer.seek(tp, ends[tp])
                if progress is not None:
                    progress(self.result.read, max(total, self.result.read))
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
            for share in forked:  # only after a failure
                share.process.kill()
                share.receiver.close()
            await consumer.stop()
            await engine.dispose()
        self.result.aggregates = len(self.facts)
        self.result.seconds = time.perf_counter() - started
        return self.result


async def rebuild(settings: ReportingSettings, progress: Progress | None = None) -> RebuildResult:
    return await Rebuilder(settings).run(progress)
