"""ICAC end-to-end ingest on the real broker and PostgreSQL (issue 8), beside the raw aiokafka
consume rate of the same messages in the same run.

The path measured is the service's own: its batch consumer on ``icac.tips.inbound`` (6
partitions) → validate → inbox dedup → ingest lock → dedup/versions → enrich (GeoIP test
database, jurisdiction) → known-hash match (100,000 entries: MD5, SHA-1, PDQ) → link (blind
indexes, clusters) → priority → COPY of tips, versions (encrypted), identifiers, sightings,
matches and ``tip.received`` + ``tip.triaged`` into the outbox → commit → offsets. The outbox
relay runs meanwhile (one per store), publishing the events to the broker; its drain is reported
too.

- raw: plain aiokafka ``getmany`` (2,000 records) decoding each tip's JSON: the ceiling a
  Python consumer starts from.
- validate only: the same, plus the domain's validation and fingerprint (no store): the
  ceiling of the domain's share.
- one process: the service app in this process (``create_app``, its lifespan), 2,000-record
  batches, the feed already on the topic; the rate is counted from the first stored tip to
  the last. Its outbox relay is held back until the last tip is stored, so the ingest and the
  relay's drain are measured apart.
- two processes: two service processes in one consumer group (3 partitions each), sharing
  the store, relays running (as deployed); the feed is produced once both have joined.

Rates are wall-clock on a machine other work may share (the load average is printed), so
each run also gives the CPU time the service process(es) and the PostgreSQL backends spent per
tip (from /proc, between the first stored tip and the last): the cost of the work whatever
else the machine is doing, and the rate one core of CPU would sustain.
Environment: ``ICAC_BENCH_TIPS`` (default 100,000).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_platform.devstack.kafka import LocalKafka, ensure_topics, free_port
from cpu_platform.devstack.postgres import LocalPostgres

N = int(os.environ.get("ICAC_BENCH_TIPS", "100000"))
HASH_SET_SIZE = 100_000
PARTITIONS = 6
BATCH = 2000
SETTLE = 8.0


def _environment(base: Path) -> None:
    # Every process of the run (this one and the service processes) shares these dev keys.
    os.environ["CPU_CRYPTO_DEV_KEYS_FILE"] = str(base / "keys" / "master-keys.json")
    os.environ["CPU_AUTH_DEV_SIGNING_KEY_FILE"] = str(base / "keys" / "signing-key.pem")
    os.environ["ICAC_LOG_LEVEL"] = "WARNING"


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in messages:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(messages) / (time.perf_counter() - started)


async def raw_consume(bootstrap: str, topic: str, count: int, *, validate: bool) -> float:
    from cpu_icac.domain.tip_report import parse_tip_report

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"bench.raw.{validate}.{time.time_ns()}",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=BATCH)
            if started is None and batch:
                started = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if validate:
                        parse_tip_report(record.value).content_fingerprint()
                    else:
                        json.loads(record.value)
                    seen += 1
    finally:
        await consumer.stop()
    assert started is not None
    return count / (time.perf_counter() - started)


async def _watch(
    url: str,
    bootstrap: str,
    group: str,
    count: int,
    events: int,
    meter: CpuMeter,
    timeout: float = 3600,
    on_ingested: Any = None,
) -> dict[str, float]:
    """When the first batch was committed, when the last was (from the consumer group's
    committed offsets: watching costs the store nothing), and when the outbox drained; and the
    CPU the service and the store spent between the first batch and the last."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    engine = create_async_engine(url, pool_size=1)
    first = last = drained = None
    first_count = 0
    deadline = time.perf_counter() + timeout
    try:
        while time.perf_counter() < deadline and last is None:
            try:
                offsets = await admin.list_consumer_group_offsets(group)
            except Exception:  # the group may not exist yet
                offsets = {}
            done = sum(meta.offset for meta in offsets.values() if meta.offset > 0)
            now = time.perf_counter()
            if done and first is None:
                first, first_count = now, done
                meter.start()
            if done >= count:
                last = now
                service_cpu, database_cpu = meter.stop()
                if on_ingested is not None:
                    on_ingested()
                break
            await asyncio.sleep(0.1)
        while time.perf_counter() < deadline and last is not None:
            async with engine.connect() as conn:
                unsent, sent = (
                    await conn.execute(
                        sa.text(
                            "SELECT count(*) FILTER (WHERE sent_at IS NULL), "
                            "count(*) FILTER (WHERE sent_at IS NOT NULL) FROM outbox"
                        )
                    )
                ).one()
            if unsent == 0 and sent >= events:
                drained = time.perf_counter()
                break
            await asyncio.sleep(0.25)
    finally:
        await engine.dispose()
        await admin.close()
    if first is None or last is None or drained is None:
        raise RuntimeError("the ingest did not finish in time")
    engine = create_async_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.text("SELECT count(*) FROM icac_tip"))).scalar_one()
    finally:
        await engine.dispose()
    if stored != count:
        raise RuntimeError(f"{stored} tips stored, not {count}")
    return {
        "rate": (count - first_count) / max(last - first, 1e-9),
        "seconds": last - first,
        "relay_rate": events / max(drained - (last if on_ingested else first), 1e-9),
        "drain_after": drained - last,
        "service_us": service_cpu / max(count - first_count, 1) * 1e6,
        "database_us": database_cpu / max(count - first_count, 1) * 1e6,
    }


async def _prepare_store(url: str, known: Any) -> None:
    from cpu_icac.service_layer.hash_sets import store_hash_set
    from cpu_shared.db import apply_migrations, create_engine, session_factory

    await apply_migrations("cpu_icac.migrations", url)
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await store_hash_set(session, known, data=b"bench", user="bench", now=datetime.now(UTC))
    finally:
        await engine.dispose()


def _settings(url: str, bootstrap: str, topic: str, geoip: Path) -> Any:
    from cpu_icac.config import IcacSettings

    return IcacSettings(
        database_url=url,
        kafka_bootstrap_servers=bootstrap,
        geoip_database=geoip,
        inbound_topic=topic,
        inbound_group=f"bench-{time.time_ns()}",
        consumer_max_records=BATCH,
        run_migrations=False,
        lag_interval=3600,
        log_level="WARNING",
    )


async def one_process(
    bootstrap: str, url: str, topic: str, geoip: Path, known: Any, messages: list[Any]
) -> dict[str, float]:
    from cpu_icac.app import create_app

    await _prepare_store(url, known)
    await produce(bootstrap, topic, messages)
    settings = _settings(url, bootstrap, topic, geoip)
    app = create_app(settings)
    icac = app.state.icac
    relay = app.state.runtime.relay
    release = asyncio.Event()
    relay_run = relay.run

    async def deferred_relay() -> None:
        await release.wait()
        await relay_run()

    # The ingest (consume -> outbox) and the relay (outbox -> broker) are measured apart here:
    # the relay starts when the last tip is stored. The two-process run below has them together.
    relay.run = deferred_relay  # type: ignore[method-assign]
    meter = CpuMeter([os.getpid()], url.rsplit("/", 1)[1])
    async with LifespanManager(app, startup_timeout=300, shutdown_timeout=120):
        figures = await _watch(
            url,
            bootstrap,
            f"icac.{settings.inbound_group}",
            N,
            2 * N,
            meter,
            on_ingested=release.set,
        )
    samples = {
        sample.name: sample.value
        for family in icac.metrics.ingest_seconds.collect()
        for sample in family.samples
        if sample.labels.get("channel") == "kafka"
    }
    batches = samples.get("cpu_icac_ingest_batch_seconds_count", 0.0)
    spent = samples.get("cpu_icac_ingest_batch_seconds_sum", 0.0)
    figures["batches"] = batches
    figures["batch_seconds"] = spent / batches if batches else 0.0
    return figures


async def processes(
    bootstrap: str,
    url: str,
    topic: str,
    geoip: Path,
    known: Any,
    count: int,
    logs: Path,
    messages: list[Any],
) -> dict[str, float]:
    from cpu_platform.testing.processes import ServiceProcess

    await _prepare_store(url, known)
    group = f"bench-{time.time_ns()}"
    procs = []
    for n in range(count):
        port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "ICAC_PORT": str(port),
            "ICAC_DATABASE_URL": url,
            "ICAC_GEOIP_DATABASE": str(geoip),
            "ICAC_INBOUND_TOPIC": topic,
            "ICAC_INBOUND_GROUP": group,
            "ICAC_CONSUMER_MAX_RECORDS": str(BATCH),
            "ICAC_RUN_MIGRATIONS": "false",
            "ICAC_LAG_INTERVAL": "3600",
        }
        procs.append(ServiceProcess("cpu_icac.app", env, logs / f"icac-{n}.log", port).spawn())
    try:
        for proc in procs:
            proc.wait_healthy(timeout=300)
            await _hash_sets_loaded(proc.url)
        await asyncio.sleep(SETTLE)  # every process joins the group and gets its partitions
        meter = CpuMeter([p.proc.pid for p in procs if p.proc], url.rsplit("/", 1)[1])
        producing = asyncio.create_task(produce(bootstrap, topic, messages))
        figures = await _watch(url, bootstrap, f"icac.{group}", N, 2 * N, meter)
        await producing
        return figures
    finally:
        for proc in procs:
            try:
                proc.terminate(timeout=60)
            except Exception:
                proc.kill()


async def _hash_sets_loaded(base: str, timeout: float = 300) -> None:
    import httpx

    deadline = time.perf_counter() + timeout
    async with httpx.AsyncClient(timeout=10) as client:
        while time.perf_counter() < deadline:
            metrics = (await client.get(f"{base}/metrics")).text
            if f"cpu_icac_hash_set_entries {float(HASH_SET_SIZE)}" in metrics:
                return
            await asyncio.sleep(0.5)
    raise RuntimeError("the service did not load its hash sets")


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_backends(database: str) -> list[int]:
    """The server processes serving ``database`` (their title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            pids.append(int(entry.name))
    return pids


class CpuMeter:
    """CPU seconds used by some processes between :meth:`start` and :meth:`stop`: the cost of
    the work whatever else the machine is doing."""

    def __init__(self, service_pids: list[int], database: str) -> None:
        self.service_pids = service_pids
        self.database = database
        self.before: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        pids = [*self.service_pids, *_postgres_backends(self.database)]
        return {pid: _cpu_of(pid) for pid in pids}

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> tuple[float, float]:
        """(service CPU seconds, PostgreSQL CPU seconds) since :meth:`start`."""
        after = self._now()
        service = sum(after.get(p, 0.0) - self.before.get(p, 0.0) for p in self.service_pids)
        database = sum(
            v - self.before.get(p, 0.0) for p, v in after.items() if p not in self.service_pids
        )
        return service, database


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def _cpu_line(figures: dict[str, float], what: str) -> None:
    service, database = figures["service_us"], figures["database_us"]
    print(
        f"  CPU per tip: {service:,.0f} us in the service process(es) ({what}), "
        f"{database:,.0f} us in PostgreSQL: {1e6 / (service + database):,.0f} tips/s per core "
        f"of CPU, whatever the load"
    )


async def run(base: Path, kafka: LocalKafka, pg: LocalPostgres) -> None:
    from cpu_icac.adapters.geoip import write_test_database
    from cpu_icac.synthetic import known_hash_set, synthetic_feed

    bootstrap = kafka.bootstrap_servers
    geoip = write_test_database(base / "city.mmdb")
    started = time.perf_counter()
    known = known_hash_set(HASH_SET_SIZE, seed=5)
    feed = synthetic_feed(
        N, now=datetime.now(UTC), duplicate_share=0, malformed_share=0, known=known.entries
    )
    sizes = [len(v) for _, v in feed.messages]
    print(
        f"feed: {N:,} tips, {statistics.mean(sizes):,.0f} bytes each on average; "
        f"known-hash list of {HASH_SET_SIZE:,} entries (generated in "
        f"{time.perf_counter() - started:.0f} s)"
    )
    topics = {f"bench.icac.tips.{k}": PARTITIONS for k in ("raw", "one", "two")}
    ensure_topics(bootstrap, {**topics, **{f"{t}.dlq": 1 for t in topics}})
    rate = await produce(bootstrap, "bench.icac.tips.raw", feed.messages)
    print(f"produced ({rate:,.0f} msgs/s, acks=all, idempotent)")
    messages = feed.messages
    del feed
    gc.collect()

    print(_load())
    raw = await raw_consume(bootstrap, "bench.icac.tips.raw", N, validate=False)
    print(f"raw aiokafka consume (getmany {BATCH}, json.loads):   {raw:10,.0f} tips/s")
    checked = await raw_consume(bootstrap, "bench.icac.tips.raw", N, validate=True)
    print(f"consume + domain validation and fingerprint, no store: {checked:10,.0f} tips/s")

    pg.create_database("bench_icac_one")
    one = await one_process(
        bootstrap, pg.url("bench_icac_one"), "bench.icac.tips.one", geoip, known, messages
    )
    print(_load())
    print(
        f"end to end, 1 service process (consume -> outbox):    {one['rate']:10,.0f} tips/s "
        f"({one['rate'] / raw:.1%} of raw; {N:,} tips in {one['seconds']:.1f} s, "
        f"{one['batches']:.0f} batches of {N / max(one['batches'], 1):,.0f}, "
        f"{one['batch_seconds'] * 1000:,.0f} ms each in the pipeline)"
    )
    _cpu_line(one, "consumer and pipeline")
    print(
        f"  outbox relay, started once the last tip was stored: {2 * N:,} events "
        f"(tip.received + tip.triaged) published and confirmed in {one['drain_after']:.1f} s: "
        f"{one['relay_rate']:,.0f} events/s"
    )

    pg.create_database("bench_icac_two")
    logs = base / "logs"
    logs.mkdir(exist_ok=True)
    two = await processes(
        bootstrap,
        pg.url("bench_icac_two"),
        "bench.icac.tips.two",
        geoip,
        known,
        2,
        logs,
        messages,
    )
    print(_load())
    print(
        f"end to end, 2 service processes (one group):          {two['rate']:10,.0f} tips/s "
        f"({two['rate'] / raw:.1%} of raw; {N:,} tips in {two['seconds']:.1f} s)"
    )
    _cpu_line(two, "consumers, pipelines and relays")
    print(
        f"  outbox relay: {two['relay_rate']:,.0f} events/s over the run, drained "
        f"{two['drain_after']:.1f} s after the last tip"
    )
    best = max(one["rate"], two["rate"])
    print(
        f"targets: 20,000 tips/s -> {'met' if best >= 20_000 else 'NOT met'} ({best:,.0f}); "
        f"25% of raw -> {'met' if best / raw >= 0.25 else 'NOT met'} ({best / raw:.1%})"
    )


def main() -> None:
    thresholds = gc.get_threshold()
    base = Path(tempfile.mkdtemp(prefix="cpu-bench-icac-"))
    _environment(base)
    try:
        with LocalKafka(base / "kafka") as kafka, LocalPostgres(base / "pg") as pg:
            asyncio.run(run(base, kafka, pg))
    finally:  # ``python -m bench`` runs the next benchmark in this same process
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        shutil.rmtree(base, ignore_errors=True)  # the broker's and the store's data


if __name__ == "__main__":
    main()
