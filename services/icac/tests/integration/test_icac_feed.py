"""The feed on the real broker: 10,000 tips, 5% re-sent, 1% malformed, through the service's
own batch consumer into PostgreSQL.

Every valid tip is stored once, every malformed message is in ``<topic>.dlq`` with its reason,
and every tip's priority, score and reasons are what the domain's rules give for its report,
its known-hash matches, its place (the test GeoIP database) and the size of its subject cluster
as the domain's linker computes it over the whole feed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from cpu_icac.adapters.geoip import GeoIpLocator
from cpu_icac.app import create_app
from cpu_icac.config import IcacSettings
from cpu_icac.domain.hash_sets import HashIndex
from cpu_icac.domain.jurisdiction import assess_jurisdiction
from cpu_icac.domain.linking import SubjectLinker, tip_identifiers
from cpu_icac.domain.priority import assess_priority
from cpu_icac.domain.tip_report import parse_tip_report
from cpu_icac.synthetic import hash_set_csv, known_hash_set, synthetic_feed
from cpu_platform.devstack.kafka import ensure_topics
from cpu_platform.testing.kafka_tools import bearer, committed_offsets, produce, read_all, unique
from cpu_shared.messaging.dead_letters import (
    H_GROUP,
    H_REASON,
    record_headers,
    topic_partitions,
)
from cpu_shared.messaging.envelope import EventEnvelope

pytestmark = pytest.mark.integration

FEED = 10_000


async def _end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tps = [TopicPartition(topic, p) for p in await topic_partitions(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _wait(check: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.5)


@pytest.fixture
async def service(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str], geoip_database: Path
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, IcacSettings]]:
    topic = unique("icac.tips.inbound")
    ensure_topics(kafka_bootstrap_servers, {topic: 6, f"{topic}.dlq": 1})
    settings = IcacSettings(
        database_url=make_database("icac"),
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        geoip_database=geoip_database,
        inbound_topic=topic,
        inbound_group=unique("tips-inbound"),
        lag_interval=3600,
    )
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://icac") as client:
            yield app, client, settings


async def test_a_feed_of_10000_tips_with_duplicates_and_malformed_reports(
    service: tuple[FastAPI, httpx.AsyncClient, IcacSettings],
    kafka_bootstrap_servers: str,
    geoip_database: Path,
) -> None:
    app, client, settings = service
    runtime = app.state.runtime
    known = known_hash_set(2_000, seed=5)
    uploaded = await client.post(
        "/api/v1/hash-sets",
        files={"file": ("national.csv", hash_set_csv(known), "text/csv")},
        data={"name": "national"},
        headers=bearer("supervisor"),
    )
    assert uploaded.status_code == 201, uploaded.text

    feed = synthetic_feed(FEED, now=datetime.now(UTC), known=known.entries)
    assert len(feed.messages) == FEED and feed.duplicates == 500 and len(feed.malformed) == 100
    await produce(kafka_bootstrap_servers, settings.inbound_topic, feed.messages)
    ends = await _end_offsets(kafka_bootstrap_servers, settings.inbound_topic)
    assert sum(ends.values()) == FEED
    group = f"icac.{settings.inbound_group}"

    async def consumed() -> bool:
        done = await committed_offsets(kafka_bootstrap_servers, group)
        return all(done.get(tp, 0) >= end for tp, end in ends.items())

    await _wait(consumed, 600, "the consumer to commit the whole feed")

    async with runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT id, provider, report_id, version, priority, score, reasons, "
                    "received_at, cluster_id, hash_match_count, province_code FROM icac_tip"
                )
            )
        ).all()
        versions = (await conn.execute(sa.text("SELECT count(*) FROM icac_tip_version"))).scalar()
        payloads = [bytes(r[0]) for r in await conn.execute(sa.text("SELECT payload FROM outbox"))]
        quarantined = (await conn.execute(sa.text("SELECT count(*) FROM icac_quarantine"))).scalar()

    # Every valid tip stored once, and only those.
    assert len(rows) == len(feed.valid) == FEED - 500 - 100
    assert Counter((r.provider, r.report_id) for r in rows) == Counter(
        (t["provider"], t["report_id"]) for t in feed.valid
    )
    assert {r.version for r in rows} == {1} and versions == len(rows)
    assert quarantined == 0
    events = Counter(EventEnvelope.from_bytes(p).event_type for p in payloads)
    assert events["tip.received"] == len(rows)
    assert events["tip.triaged"] >= len(rows)

    # Every malformed message in the DLQ, with its reason.
    dead = await read_all(kafka_bootstrap_servers, f"{settings.inbound_topic}.dlq")
    assert len(dead) == len(feed.malformed)
    expected_reasons = Counter(feed.malformed)
    for record in dead:
        headers = record_headers(record)
        assert headers[H_GROUP] == group
        match = next(
            (v, reason)
            for (v, reason) in expected_reasons
            if v == record.value and reason in headers[H_REASON]
        )
        expected_reasons[match] -= 1
    assert all(n == 0 for n in expected_reasons.values())

    # The priorities are what the rules say.
    reports = {(t["provider"], t["report_id"]): parse_tip_report(t) for t in feed.valid}
    linker = SubjectLinker()
    for key, report in reports.items():
        linker.add(tip_identifiers(f"{key[0]}|{key[1]}", report))
    size_of = {}
    component_of = {}
    for cluster in linker.clusters():
        for member in cluster.tip_ids:
            size_of[member] = cluster.size
            component_of[member] = cluster.cluster_id
    index = HashIndex.of([known])
    geo = GeoIpLocator(geoip_database)
    levels: Counter[str] = Counter()
    by_cluster: dict[Any, set[str]] = {}
    try:
        for row in rows:
            report = reports[(row.provider, row.report_id)]
            name = f"{row.provider}|{row.report_id}"
            matches = index.match_report(report)
            expected = assess_priority(
                report,
                now=row.received_at,
                hash_matches=matches,
                cluster_size=size_of[name],
                jurisdiction=assess_jurisdiction(report, geo.locate_all(report.ip_addresses())),
                hash_sets_checked=True,
            )
            stored = json.loads(row.reasons)
            assert (row.priority, row.score) == (expected.level, expected.score), (
                row.report_id,
                stored,
                expected.reasons,
            )
            assert sorted(code for code, _ in stored) == sorted(expected.reason_codes)
            assert row.hash_match_count == len(matches)
            levels[row.priority] += 1
            by_cluster.setdefault(row.cluster_id, set()).add(component_of[name])
    finally:
        geo.close()
    # The service's clusters are the linker's.
    assert all(len(components) == 1 for components in by_cluster.values())
    assert len(by_cluster) == len(set(component_of.values()))
    assert len(levels) == 4, levels  # the feed exercises every level
    assert sum(1 for r in rows if r.hash_match_count) > 100


async def test_reports_with_file_content_are_quarantined_not_dead_lettered(
    service: tuple[FastAPI, httpx.AsyncClient, IcacSettings], kafka_bootstrap_servers: str
) -> None:
    app, _client, settings = service
    good = synthetic_feed(1, now=datetime.now(UTC), duplicate_share=0, malformed_share=0).valid[0]
    image = "/9j/4AAQSkZJRgABAQ" + "A" * 4000
    payloads = [
        dict(good, report_id="PAY-1", files=[{"md5": "0" * 32, "data": image}]),
        dict(good, report_id="PAY-2", narrative=f"data:image/jpeg;base64,{image}"),
        dict(good, report_id="PAY-3", thumbnail=image),
    ]
    messages = [(p["report_id"].encode(), json.dumps(p).encode()) for p in [*payloads, good]]
    await produce(kafka_bootstrap_servers, settings.inbound_topic, messages)
    ends = await _end_offsets(kafka_bootstrap_servers, settings.inbound_topic)
    group = f"icac.{settings.inbound_group}"

    async def consumed() -> bool:
        done = await committed_offsets(kafka_bootstrap_servers, group)
        return all(done.get(tp, 0) >= end for tp, end in ends.items())

    await _wait(consumed, 300, "the consumer to commit the messages")
    async with app.state.runtime.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT report_id, reason_code, reason, raw, raw_omitted, raw_sha256, "
                    "provenance FROM icac_quarantine ORDER BY report_id"
                )
            )
        ).all()
        tips = (await conn.execute(sa.text("SELECT report_id FROM icac_tip"))).scalars().all()
    assert [r.report_id for r in rows] == ["PAY-1", "PAY-2", "PAY-3"]
    assert all(r.reason_code == "file_payload" and r.raw is None for r in rows)
    assert all(r.raw_omitted == "file_payload" and len(r.raw_sha256) == 64 for r in rows)
    assert all(r.provenance.startswith(settings.inbound_topic) for r in rows)
    assert "file content is refused" in rows[0].reason
    assert tips == [good["report_id"]]
    assert await read_all(kafka_bootstrap_servers, f"{settings.inbound_topic}.dlq", timeout=5) == []
