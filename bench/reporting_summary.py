"""Reporting (issue 9): summary query time over 1M cases / ~10M events, and the rebuild rate.

Run: ``uv run python -m bench reporting_summary`` (part of ``make bench``), or
``uv run python bench/reporting_summary.py [cases] [rebuild_events]``. Prints figures only.

* summary: synthetic facts of N cases (default 1,000,000; about 10 events each: opening,
  assignment, arrests, charges, court outcomes, victim services, evidence, analyses, closing)
  over 2015-2024, folded into the real rollup rows by the real ``contribute`` and bulk-loaded
  with COPY into PostgreSQL (set-keyed rows, the monthly/yearly cube, the distinct-children
  rows and the daily margins); then
  ``GET /reports/summary``'s whole read path (cube, medians, distinct children, months;
  suppression and the document) is timed for a year, a decade, a period starting mid-month,
  and with province/team/offence filters: median and max of a few runs each. The machine's
  load average is printed with the figures.
* rebuild: the scenario's events (redeliveries, out-of-order and refused events included)
  repeated under fresh ids up to M events (default 500,000) on a local broker, then
  ``cpu reporting rebuild``'s code from offset 0 into an empty PostgreSQL database; events/s
  over the whole run (read, fold, compute, swap in), and for the read-and-fold phase alone
  (in shares of the partitions, one process each: ``REPORTING_REBUILD_PROCESSES``).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cpu_platform.devstack.kafka import LocalKafka, ensure_topics
from cpu_platform.devstack.postgres import LocalPostgres
from cpu_reporting import scenario
from cpu_reporting.adapters.store import RollupRows, replace_all
from cpu_reporting.config import ReportingSettings
from cpu_reporting.domain.contributions import contribute
from cpu_reporting.domain.facts import CaseFacts, Opening, Outcome
from cpu_reporting.domain.report import Query
from cpu_reporting.domain.suppression import Suppression
from cpu_reporting.service_layer.rebuild import Rebuilder
from cpu_reporting.service_layer.reports import summary
from cpu_shared.db import apply_migrations, create_engine, session_factory
from cpu_shared.messaging.topics import all_topic_names

PROVINCES = [f"{i:02d}" for i in range(1, 26)]
TEAM_SETS = [("OVCS",), ("HIT",), ("OVCS", "HIT"), ("FST", "OVCS"), ("ICAC",)]
OFFENCES = [f"CC-2009-art-{a}" for a in (199, 239, 240, 241, 242, 246, 248)] + [
    f"LSHTSE-2008-art-{a}" for a in (8, 12, 15, 24, 34)
]
CONCERNS = ["rape", "sexual_abuse", "trafficking", "physical_abuse", "homicide", "neglect"]
SERVICES = ["medical_care", "psychological_counselling", "legal_representation", "shelter"]
START = date(2015, 1, 1)
DAYS = 3652


def synthetic_case(i: int, rng: random.Random) -> tuple[CaseFacts, int]:
    """One case's facts and the number of events they stand for."""
    opened_on = START + timedelta(days=rng.randrange(DAYS))
    received = datetime(opened_on.year, opened_on.month, opened_on.day, 2, tzinfo=UTC) - timedelta(
        days=rng.randrange(0, 4)
    )
    concerns = (rng.choice(CONCERNS),)
    c = CaseFacts(f"bench-case-{i:08d}")
    c.opening = Opening(
        opened_on=opened_on,
        referral_received_at=received if rng.random() < 0.85 else None,
        province=rng.choice(PROVINCES),
        concerns=concerns,
        teams=rng.choice(TEAM_SETS),
        children_under_15=rng.randrange(0, 3),
        version=1,
        event_id="e",
    )
    events = 2  # opened, assigned
    if rng.random() < 0.8:
        for s in range(rng.choice((1, 1, 1, 2))):
            suspect = f"s{s}"
            arrested = opened_on + timedelta(days=rng.randrange(0, 60))
            c.arrests[suspect] = arrested
            events += 1
            if rng.random() < 0.7:
                c.charged_on[suspect] = arrested + timedelta(days=rng.randrange(1, 30))
                c.charge_codes[suspect] = {rng.choice(OFFENCES)}
                events += 1
                if rng.random() < 0.5:
                    c.outcomes[suspect] = Outcome(
                        decided_on=c.charged_on[suspect] + timedelta(days=rng.randrange(30, 400)),
                        convicted=rng.random() < 0.8,
                        sentence_months=rng.randrange(12, 240),
                        offences=tuple(c.charge_codes[suspect]),
                        version=5,
                        event_id="o",
                    )
                    events += 1
    for k in range(rng.randrange(0, 4)):
        c.services.add((f"child-{i}-{k % 2}", rng.choice(SERVICES), opened_on + timedelta(days=k)))
        events += 1
    for k in range(rng.randrange(0, 4)):
        c.evidence[f"item{k}"] = opened_on + timedelta(days=k)
        events += 1
        if rng.random() < 0.4:
            c.analyses_requested[f"a{k}"] = opened_on + timedelta(days=k + 1)
            c.analyses_completed[f"a{k}"] = opened_on + timedelta(days=k + 20)
            events += 2
    c.homicide_at_close = "homicide" in concerns and rng.random() < 0.3
    events += 1  # closed
    return c, events


async def load_summary_facts(url: str, cases: int) -> tuple[int, int, float]:
    await apply_migrations("cpu_reporting.migrations", url)
    rng = random.Random(2024)
    started = time.perf_counter()
    rows = RollupRows()
    events = 0
    for i in range(cases):
        facts, n = synthetic_case(i, rng)
        events += n
        contribute(facts, rows)
    engine = create_engine(url)
    async with session_factory(engine)() as session, session.begin():
        await replace_all(session, [], rows)
    async with engine.connect() as conn:
        from sqlalchemy import text

        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    return events, len(rows.counts), time.perf_counter() - started


async def time_summaries(url: str) -> list[tuple[str, float, float]]:
    engine = create_engine(url)
    sessions = session_factory(engine)
    cases = [
        ("year 2019", Query(date(2019, 1, 1), date(2019, 12, 31))),
        ("half-year 2024-H1", Query(date(2024, 1, 1), date(2024, 6, 30))),
        ("decade 2015-2024", Query(date(2015, 1, 1), date(2024, 12, 31))),
        ("mid-month 2019-03-17..2020-02-11", Query(date(2019, 3, 17), date(2020, 2, 11))),
        ("year 2019, province 12", Query(date(2019, 1, 1), date(2019, 12, 31), province="12")),
        ("year 2019, team HIT", Query(date(2019, 1, 1), date(2019, 12, 31), team="HIT")),
        (
            "year 2019, offence CC-2009-art-239",
            Query(date(2019, 1, 1), date(2019, 12, 31), offence="CC-2009-art-239"),
        ),
    ]
    out = []
    for label, query in cases:
        times = []
        for _ in range(7):
            async with sessions() as session:
                started = time.perf_counter()
                doc = await summary(session, query, Suppression(5))
                times.append(time.perf_counter() - started)
        assert doc["investigations"] or label.startswith("year 2019, offence")
        out.append((label, statistics.median(times[1:]) * 1000, max(times[1:]) * 1000))
    await engine.dispose()
    return out


async def produce_events(bootstrap: str, count: int) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    sent = 0
    try:
        year = 2000
        while sent < count:
            s = scenario.build(year + sent // 100_000, tag=f"bench{sent:09d}")
            futures = []
            for topic, envelope in s.messages:
                futures.append(
                    await producer.send(
                        topic, value=envelope.to_bytes(), key=envelope.aggregate_id.encode()
                    )
                )
                sent += 1
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def rebuild_rate(bootstrap: str, url: str, count: int) -> tuple[int, float, float, int, int]:
    produced = await produce_events(bootstrap, count)
    settings = ReportingSettings(database_url=url, kafka_bootstrap_servers=bootstrap)
    result = await Rebuilder(settings).run()
    rates = result.rate, result.read / result.read_seconds
    return produced, *rates, result.aggregates, result.shares


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    cases = int(args[0]) if args else 1_000_000
    rebuild_events = int(args[1]) if len(args) > 1 else 500_000
    base = Path(tempfile.mkdtemp(prefix="cpu-bench-reporting-"))
    # Figures on a shared machine mean little without its load.
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with LocalPostgres(base / "pg") as pg:
        pg.create_database("bench_summary")
        events, rollup_rows, load_s = asyncio.run(
            load_summary_facts(pg.url("bench_summary"), cases)
        )
        print(
            f"summary facts: {cases:,} cases, {events:,} events' worth, {rollup_rows:,} rollup "
            f"rows (daily + monthly), computed and loaded in {load_s:.0f} s"
        )
        for label, median_ms, max_ms in asyncio.run(time_summaries(pg.url("bench_summary"))):
            print(f"summary {label:36s} median {median_ms:7.1f} ms   max {max_ms:7.1f} ms")
        print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        if rebuild_events:
            with LocalKafka(base / "kafka") as kafka:
                ensure_topics(kafka.bootstrap_servers, all_topic_names())
                pg.create_database("bench_rebuild")
                produced, rate, read_rate, aggregates, shares = asyncio.run(
                    rebuild_rate(kafka.bootstrap_servers, pg.url("bench_rebuild"), rebuild_events)
                )
                print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
                print(
                    f"rebuild: {produced:,} events, {aggregates:,} aggregates: "
                    f"{rate:,.0f} events/s end to end (read, fold, compute, swap in); "
                    f"{read_rate:,.0f} events/s reading and folding ({shares} processes)"
                )


if __name__ == "__main__":
    main()
