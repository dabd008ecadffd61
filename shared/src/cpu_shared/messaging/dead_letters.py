"""Dead-letter headers, and reading and redriving ``<topic>.dlq``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiokafka import ConsumerRecord

from cpu_shared.messaging.topics import DLQ_SUFFIX

H_REASON = "x-dlq-reason"
H_EXCEPTION = "x-dlq-exception-type"
H_GROUP = "x-dlq-consumer-group"
H_TOPIC = "x-dlq-original-topic"
H_PARTITION = "x-dlq-original-partition"
H_OFFSET = "x-dlq-original-offset"
H_FIRST_FAILED = "x-dlq-first-failed-at"
H_DLQ_TIME = "x-dlq-dead-lettered-at"
H_REDRIVE = "x-dlq-redriven-from"
DLQ_HEADERS = (
    H_REASON,
    H_EXCEPTION,
    H_GROUP,
    H_TOPIC,
    H_PARTITION,
    H_OFFSET,
    H_FIRST_FAILED,
    H_DLQ_TIME,
)


@dataclass(frozen=True)
class DeadLetterHeaders:
    reason: str
    exception_type: str
    consumer_group: str
    first_failed_at: datetime


def record_headers(record: ConsumerRecord) -> dict[str, str]:
    return {
        k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v))
        for k, v in (record.headers or ())
    }


def dead_letter_headers(record: ConsumerRecord, info: DeadLetterHeaders) -> dict[str, str]:
    """Original headers plus why, where from and since when this message failed.

    A message dead-lettered again after a redrive keeps its original first-failure time.
    """
    from cpu_shared.messaging.envelope import utcnow

    headers = record_headers(record)
    first = headers.get(H_FIRST_FAILED) or info.first_failed_at.isoformat()
    headers.update(
        {
            H_REASON: info.reason[:1000],
            H_EXCEPTION: info.exception_type,
            H_GROUP: info.consumer_group,
            H_TOPIC: record.topic,
            H_PARTITION: str(record.partition),
            H_OFFSET: str(record.offset),
            H_FIRST_FAILED: first,
            H_DLQ_TIME: utcnow().isoformat(),
        }
    )
    return headers


def original_topic(dlq_topic: str) -> str:
    if not dlq_topic.endswith(DLQ_SUFFIX):
        raise ValueError(f"{dlq_topic!r} is not a dead-letter topic (no {DLQ_SUFFIX} suffix)")
    return dlq_topic[: -len(DLQ_SUFFIX)]


@dataclass(frozen=True)
class DeadLetter:
    dlq_topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, str]
    value: bytes

    @property
    def reason(self) -> str:
        return self.headers.get(H_REASON, "")

    def summary(self) -> dict[str, object]:
        """What an operator needs to decide on a redrive; never the message body."""
        h = self.headers
        return {
            "dlq": f"{self.dlq_topic}:{self.partition}:{self.offset}",
            "original": f"{h.get(H_TOPIC, '?')}:{h.get(H_PARTITION, '?')}:{h.get(H_OFFSET, '?')}",
            "consumer_group": h.get(H_GROUP, ""),
            "exception_type": h.get(H_EXCEPTION, ""),
            "reason": h.get(H_REASON, ""),
            "first_failed_at": h.get(H_FIRST_FAILED, ""),
            "bytes": len(self.value),
        }


async def dead_letter_topics(bootstrap_servers: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.endswith(DLQ_SUFFIX))
    finally:
        await admin.close()


async def topic_partitions(bootstrap_servers: str, topic: str) -> list[int]:
    """The partition numbers of ``topic``; empty when it does not exist (yet)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    for entry in described:
        if entry.get("topic") == topic and entry.get("error_code", 0) == 0:
            return sorted(p["partition"] for p in entry.get("partitions", []))
    return []


async def read_dead_letters(bootstrap_servers: str, dlq_topic: str) -> list[DeadLetter]:
    """Every message now in ``dlq_topic``, read without joining a consumer group."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(dlq_topic, p)
            for p in await topic_partitions(bootstrap_servers, dlq_topic)
        ]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[DeadLetter] = []
        remaining = {tp for tp in tps if ends[tp] > 0}
        for tp in tps:
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                for r in records:
                    if r.offset < ends[tp]:
                        out.append(_to_dead_letter(r))
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


def _to_dead_letter(record: ConsumerRecord) -> DeadLetter:
    return DeadLetter(
        dlq_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode(errors="replace") if record.key else None,
        headers=record_headers(record),
        value=record.value or b"",
    )


async def redrive(bootstrap_servers: str, dlq_topic: str) -> tuple[int, int]:
    """Replay dead letters onto their original topic. Returns (republished, skipped).

    Progress is kept as the committed offsets of the group ``cpu.dlq-redrive``, so running
    it twice replays nothing twice. Consumers drop redelivered events by id; copies of one
    message dead-lettered by several groups are replayed once per run.
    """
    import hashlib

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    target = original_topic(dlq_topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id="cpu.dlq-redrive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=True)
    await consumer.start()
    await producer.start()
    republished = skipped = 0
    try:
        tps = [
            TopicPartition(dlq_topic, p)
            for p in await topic_partitions(bootstrap_servers, dlq_topic)
        ]
        if not tps:
            return 0, 0
        consumer.assign(tps)
        committed = {tp: await consumer.committed(tp) for tp in tps}
        for tp, off in committed.items():
            if off is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, off)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        seen: set[bytes] = set()
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            futures = []
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp]:
                        continue
                    digest = hashlib.sha256((r.key or b"") + b"\0" + (r.value or b"")).digest()
                    if digest in seen:
                        skipped += 1
                        continue
                    seen.add(digest)
                    headers = [
                        (k, v)
                        for k, v in (r.headers or ())
                        if k not in DLQ_HEADERS and k != H_REDRIVE
                    ]
                    # Keep when it first failed, so a second failure reports the original time.
                    first = dict(r.headers or ()).get(H_FIRST_FAILED)
                    if first is not None:
                        headers.append((H_FIRST_FAILED, first))
                    headers.append((H_REDRIVE, f"{r.topic}:{r.partition}:{r.offset}".encode()))
                    futures.append(
                        await producer.send(target, value=r.value, key=r.key, headers=headers)
                    )
                    republished += 1
            for fut in futures:
                await fut
            await consumer.commit()
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return republished, skipped
    finally:
        await producer.stop()
        await consumer.stop()
