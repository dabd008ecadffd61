"""Issue 2's figures: local broker start time, and the memory of each idle service process.

The services run as `make up` runs them (SQLite stores), idle for a while after start-up, and
their resident set size is read from /proc.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from cpu_platform.devstack.kafka import LocalKafka, ensure_topics, free_port
from cpu_platform.devstack.up import SERVICES
from cpu_platform.testing.processes import ServiceProcess
from cpu_shared.messaging.topics import all_topic_names

IDLE_SECONDS = 15


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="cpu-bench-idle-"))
    kafka = LocalKafka(base / "kafka")
    started = time.perf_counter()
    kafka.start()
    broker_start = time.perf_counter() - started
    procs: list[ServiceProcess] = []
    try:
        ensure_topics(kafka.bootstrap_servers, all_topic_names())
        for spec in SERVICES:
            prefix = spec.name.upper()
            port = free_port()
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
                f"{prefix}_PORT": str(port),
                f"{prefix}_DATABASE_URL": f"sqlite+aiosqlite:///{base / spec.name}.db",
            }
            procs.append(
                ServiceProcess(f"cpu_{spec.name}.app", env, base / f"{spec.name}.log", port).spawn()
            )
        started = time.perf_counter()
        for proc in procs:
            proc.wait_healthy(120)
        all_healthy = time.perf_counter() - started
        time.sleep(IDLE_SECONDS)
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in kafka.timings.items())
        print(
            f"local Kafka start to ready: {broker_start:.1f} s ({steps}); "
            f"broker JVM RSS {rss_mib(kafka.pid or 0):.0f} MiB"
        )
        print(f"five services spawned to all healthy: {all_healthy:.1f} s")
        for spec, proc in zip(SERVICES, procs, strict=True):
            assert proc.proc is not None
            print(f"  {spec.name:<10} idle RSS {rss_mib(proc.proc.pid):6.1f} MiB")
    finally:
        for proc in procs:
            proc.kill()
        kafka.stop()


if __name__ == "__main__":
    main()
