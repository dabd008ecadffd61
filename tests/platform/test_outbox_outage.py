"""Issue 3: the broker stopped while a service keeps accepting HTTP writes, then started again:
every write's event is published, in order for each aggregate, none twice."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_platform.devstack.kafka import LocalKafka
from cpu_platform.testing.kafka_tools import bearer, read_all, unique, wait_until


async def unsent(url: str) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            return (await conn.execute(query)).scalar_one()
    finally:
        await engine.dispose()


async def test_writes_during_a_broker_outage_are_all_published_in_order_once(
    restartable_kafka: LocalKafka, probe_process: Callable[..., object]
) -> None:
    topic_out = unique("test.outage")
    db = probe_process.database_url  # type: ignore[attr-defined]
    probe = probe_process(
        restartable_kafka.bootstrap_servers, topic_in=unique("unused"), topic_out=topic_out
    )
    probe.start()  # type: ignore[attr-defined]
    aggregates = [f"case-{n}" for n in range(4)]
    written: dict[str, list[str]] = defaultdict(list)

    async with httpx.AsyncClient(
        base_url=probe.url, timeout=30, headers=bearer("investigator")
    ) as client:  # type: ignore[attr-defined]

        async def write_round(seq: int) -> None:
            for agg in aggregates:
                r = await client.post("/api/v1/writes", json={"aggregate_id": agg, "seq": seq})
                assert r.status_code == 201, r.text
                written[agg].append(r.json()["event_id"])

        for seq in range(10):
            await write_round(seq)
        restartable_kafka.stop()
        for seq in range(10, 30):  # accepted while the broker is down
            await write_round(seq)
        assert await unsent(db) > 0
        restartable_kafka.start()

    async def drained() -> bool:
        return await unsent(db) == 0

    await wait_until(drained, 180, "the outbox to drain after the broker came back")
    records = await read_all(restartable_kafka.bootstrap_servers, topic_out)
    seen: dict[str, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        body = json.loads(record.value)
        assert record.key.decode() == body["aggregate_id"]
        seen[body["aggregate_id"]].append(body["event_id"])
    all_ids = [e for ids in seen.values() for e in ids]
    assert len(all_ids) == len(set(all_ids)) == 120, "every write published exactly once"
    assert dict(seen) == dict(written), "per-aggregate order is the order of the writes"
