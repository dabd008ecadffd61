"""Consumer lag per group and partition, and dead-letter depth, as Prometheus gauges.

Lag is measured from the broker's view (end offset minus the group's committed offset), so it
counts exactly what has not been committed, which is what an alert on a stuck consumer needs.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge

from cpu_shared.logging import get_logger
from cpu_shared.messaging.dead_letters import topic_partitions
from cpu_shared.messaging.topics import dead_letter_topic

log = get_logger(__name__)


class LagMonitor:
    def __init__(
        self, *, bootstrap_servers: str, registry: CollectorRegistry, interval: float = 15.0
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._interval = interval
        self._groups: list[tuple[str, str]] = []
        self.lag = Gauge(
            "cpu_consumer_lag",
            "Messages not yet committed by a consumer group",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.dlq_depth = Gauge(
            "cpu_dlq_depth", "Messages in a dead-letter topic", ["topic"], registry=registry
        )

    def watch(self, group: str, topic: str) -> None:
        self._groups.append((group, topic))

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            if self._groups:
                try:
                    await self.measure()
                except Exception as exc:  # the broker may be down; the gauges keep their value
                    log.debug("lag measurement failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._interval)

    async def measure(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            for group, topic in self._groups:
                tps = [
                    TopicPartition(topic, p) for p in await topic_partitions(self._bootstrap, topic)
                ]
                if not tps:
                    continue
                ends = await consumer.end_offsets(tps)
                starts = await consumer.beginning_offsets(tps)
                committed = await admin.list_consumer_group_offsets(group, partitions=tps)
                for tp in tps:
                    meta = committed.get(tp)
                    done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                    self.lag.labels(group, topic, str(tp.partition)).set(max(0, ends[tp] - done))
                dlq = dead_letter_topic(topic)
                dlq_tps = [
                    TopicPartition(dlq, p) for p in await topic_partitions(self._bootstrap, dlq)
                ]
                if dlq_tps:
                    dlq_ends = await consumer.end_offsets(dlq_tps)
                    dlq_starts = await consumer.beginning_offsets(dlq_tps)
                    depth = sum(dlq_ends[tp] - dlq_starts[tp] for tp in dlq_tps)
                else:
                    depth = 0
                self.dlq_depth.labels(topic).set(depth)
        finally:
            await consumer.stop()
            await admin.close()
