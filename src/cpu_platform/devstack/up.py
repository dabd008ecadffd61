"""`make up`: a local broker and all five services in the foreground until Ctrl-C.

The services run as child processes in their own sessions, so Ctrl-C reaches only this
supervisor, which then stops them in order: services first (each finishes in-flight work and
commits nothing it did not process), then the broker. Children die with the supervisor even
if it is killed outright, so nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from cpu_platform.devstack.kafka import LocalKafka, ensure_topics
from cpu_platform.devstack.process import die_with_parent
from cpu_shared.messaging.topics import all_topic_names, topic_configs


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port: int

    @property
    def env_prefix(self) -> str:
        return self.name.upper()


SERVICES = (
    ServiceSpec("intake", 8101),
    ServiceSpec("casework", 8102),
    ServiceSpec("forensics", 8103),
    ServiceSpec("icac", 8104),
    ServiceSpec("reporting", 8105),
)


def service_port(spec: ServiceSpec) -> int:
    return int(os.environ.get(f"{spec.env_prefix}_PORT", spec.port))


def start_service(
    spec: ServiceSpec, *, var_dir: Path, bootstrap: str, extra_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    env = os.environ | extra_env | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    env.setdefault(
        f"{spec.env_prefix}_DATABASE_URL", f"sqlite+aiosqlite:///{var_dir / (spec.name + '.db')}"
    )
    env.setdefault(f"{spec.env_prefix}_PORT", str(service_port(spec)))
    return subprocess.Popen(
        [sys.executable, "-m", f"cpu_{spec.name}.app"],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )


def wait_healthy(
    urls: dict[str, str], procs: dict[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(urls)
    while pending:
        for name, url in list(pending.items()):
            if procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited with code {procs[name].returncode} at start")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    del pending[name]
            except httpx.HTTPError:
                pass
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not healthy after {timeout:.0f} s: {', '.join(pending)}")
        time.sleep(0.2)


def stop_processes(procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(var_dir: Path, *, health_timeout: float = 180.0) -> int:
    """Run the local platform until SIGINT or SIGTERM. Returns the exit code."""
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    stop_requested = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker: LocalKafka | None = None
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if external:
            bootstrap = external
            print(f"Using the Kafka cluster at {bootstrap}", flush=True)
        else:
            print("Starting the local Kafka broker ...", flush=True)
            broker = LocalKafka(
                var_dir / "kafka",
                port=int(os.environ.get("CPU_KAFKA_PORT", 9092)),
                controller_port=int(os.environ.get("CPU_KAFKA_CONTROLLER_PORT", 9093)),
            )
            broker.start()
            bootstrap = broker.bootstrap_servers
        ensure_topics(bootstrap, all_topic_names(), configs=topic_configs())
        urls = {s.name: f"http://127.0.0.1:{service_port(s)}" for s in SERVICES}
        for spec in SERVICES:
            procs[spec.name] = start_service(
                spec, var_dir=var_dir, bootstrap=bootstrap, extra_env={}
            )
        wait_healthy(urls, procs, health_timeout)
        print("\nThe CPU platform is up:", flush=True)
        print(f"  {'kafka':<10} {bootstrap}")
        for name, url in urls.items():
            print(f"  {name:<10} {url}  (API {url}/api/v1, docs {url}/docs)")
        print("\nPress Ctrl-C to stop everything.", flush=True)
        while not stop_requested:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping", flush=True)
                    return 1
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        print(f"make up failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("\nStopping the services ...", flush=True)
        stop_processes(procs, timeout=30)
        if broker is not None:
            print("Stopping the broker ...", flush=True)
            broker.stop()
        print("Stopped.", flush=True)
