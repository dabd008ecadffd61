"""A real Apache Kafka broker on this machine, without Docker.

The broker is assembled from Maven Central jars (see ``resources/kafka-pom.xml``), cached under
:func:`cache_root`, and run as a single-node KRaft cluster (combined broker + controller, static
quorum) bound to ``127.0.0.1``.

Synchronous API::

    libs = ensure_kafka_jars()              # idempotent, safe across processes
    with LocalKafka(Path("var/kafka")) as kafka:
        ensure_topics(kafka.bootstrap_servers, {"intake.tips": 3})

CLI (for a Makefile prefetch step)::

    python -m cpu_platform.devstack.kafka fetch
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import fcntl
import functools
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import IO, Any, TypeVar

from cpu_platform.devstack.process import die_with_parent

__all__ = [
    "KAFKA_VERSION",
    "LocalKafka",
    "cache_root",
    "ensure_kafka_jars",
    "ensure_topics",
    "free_port",
]

KAFKA_VERSION = "4.1.1"

_POM_RESOURCE = "kafka-pom.xml"
_LOG4J_RESOURCE = "kafka-log4j2.properties"
_MARKER_NAME = ".complete"
_CLUSTER_ID_FILE = "cluster.id"
_NODE_ID = 1
_TAIL_LINES = 60
# Lines Kafka logs when start-up has failed for good (it then takes seconds to exit).
_FATAL_STARTUP = ("Fatal error during", "Exiting Kafka due to fatal exception")
_FATAL_GRACE = 1.0
# One readiness probe's budget: short, so a foreign listener on the port cannot stall start().
_PROBE_BUDGET = 5.0

_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Cache and jars
# --------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """Where downloaded tooling is cached.

    ``$CPU_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/cpu-platform``, else
    ``~/.cache/cpu-platform``.
    """
    explicit = os.environ.get("CPU_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "cpu-platform"
    return Path.home() / ".cache" / "cpu-platform"


def _resource_text(name: str) -> str:
    return resources.files("cpu_platform.devstack").joinpath("resources", name).read_text("utf-8")


def _pom_digest() -> str:
    return hashlib.sha256(_resource_text(_POM_RESOURCE).encode("utf-8")).hexdigest()


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _marker_ok(marker: Path, digest: str) -> bool:
    try:
        return marker.read_text("utf-8").strip() == digest
    except OSError:
        return False


def ensure_kafka_jars() -> Path:
    """Resolve the broker's jars from Maven Central once; return the ``libs`` directory.

    Returns at once (no ``mvn`` call) when the completion marker for the current pom exists.
    Otherwise resolves into a temporary directory next to the cache, renames it into place and
    writes the marker. An exclusive ``fcntl`` lock makes concurrent callers (threads or
    processes) wait for one download instead of racing.

    Raises RuntimeError if ``mvn`` is missing or fails (with the tail of its output).
    """
    home = cache_root() / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    marker = home / _MARKER_NAME
    digest = _pom_digest()
    if _marker_ok(marker, digest) and libs.is_dir():
        return libs

    home.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"kafka-{KAFKA_VERSION}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if _marker_ok(marker, digest) and libs.is_dir():
                return libs  # another process finished while we waited
            _fetch_jars_locked(home, libs, marker, digest)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return libs


def _fetch_jars_locked(home: Path, libs: Path, marker: Path, digest: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError(
            "Apache Maven ('mvn') is not on PATH; it is needed once to fetch the Kafka "
            f"{KAFKA_VERSION} jars from Maven Central into {libs}. Install it "
            "(Debian: apt-get install maven) or put a prepared libs directory there."
        )
    marker.unlink(missing_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=home))
    try:
        (build / "pom.xml").write_text(_resource_text(_POM_RESOURCE), "utf-8")
        out_dir = build / "libs"
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(build / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out_dir}",
        ]
        try:
            proc = subprocess.run(
                cmd,
                cwd=build,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
        except OSError as exc:
            raise RuntimeError(f"could not run {mvn}: {exc}") from exc
        jars = sorted(out_dir.glob("*.jar")) if out_dir.is_dir() else []
        if proc.returncode != 0 or not jars:
            raise RuntimeError(
                f"mvn failed to fetch the Kafka {KAFKA_VERSION} jars "
                f"(exit {proc.returncode}, {len(jars)} jars).\n"
                f"command: {' '.join(cmd)}\n--- mvn output (tail) ---\n{_tail(proc.stdout)}"
            )
        if not any(j.name.startswith("kafka_2.13-") for j in jars):
            raise RuntimeError(f"mvn finished but no kafka_2.13 jar is in {out_dir}")
        # Move a stale or partial libs dir out of the way, then rename the new one into place.
        if libs.exists():
            libs.rename(build / "old-libs")
        out_dir.rename(libs)
        tmp_marker = build / _MARKER_NAME
        tmp_marker.write_text(digest + "\n", "utf-8")
        tmp_marker.rename(marker)
    finally:
        shutil.rmtree(build, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def _run_coro(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coro(factory))
    # Called from async code (e.g. an async pytest fixture): use a private loop in a thread.
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(_as_coro(factory))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name="cpu-kafka-admin", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def _as_coro(factory: Callable[[], Awaitable[_T]]) -> _T:
    return await factory()


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("'java' (17 or newer) is not on PATH and JAVA_HOME is not set")
    return java


def _new_cluster_id() -> str:
    """A Kafka-style Uuid: 16 random bytes, URL-safe base64 without padding."""
    while True:
        raw = os.urandom(16)
        text = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        if not text.startswith("-") and any(raw):
            return text


# --------------------------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------------------------

_LIVE: weakref.WeakSet[LocalKafka] = weakref.WeakSet()


@atexit.register
def _stop_all_at_exit() -> None:
    for kafka in list(_LIVE):
        with contextlib.suppress(Exception):
            kafka.stop(timeout=10)


class LocalKafka:
    """A single-node Kafka (KRaft, broker + controller) on 127.0.0.1, data in ``data_dir``.

    Ports are chosen once (free ports unless given) and kept for the object's lifetime, so
    ``stop()`` then ``start()`` brings the same broker back at the same address with its data.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port if port is not None else free_port()
        ctrl = controller_port if controller_port is not None else free_port()
        while ctrl == self.port:
            ctrl = free_port()
        self.controller_port = ctrl
        self.heap = heap
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.RLock()
        self._log_offset = 0
        self.timings: dict[str, float] = {}
        """Seconds spent in the last start(): ``jars``, ``format``, ``ready``."""

    # -- paths -------------------------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The java process id while running, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def log_file(self) -> Path:
        """The broker's console output (stdout and stderr)."""
        return self.logs_dir / "broker.out"

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def _kraft_dir(self) -> Path:
        return self.data_dir / "kraft-data"

    # -- lifecycle ---------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 90) -> None:
        """Start the broker and block until an admin call succeeds against it.

        No-op if already running. Raises RuntimeError (with the tail of ``broker.out``) if the
        JVM exits or the broker is not ready within ``timeout`` seconds.
        """
        with self._lock:
            if self.is_running():
                return
            self._close_log()
            deadline = time.monotonic() + timeout
            t0 = time.monotonic()
            libs = ensure_kafka_jars()
            self.timings = {"jars": time.monotonic() - t0}

            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            log4j = self.data_dir / "log4j2.properties"
            log4j.write_text(_resource_text(_LOG4J_RESOURCE), "utf-8")
            self.properties_file.write_text(self._server_properties(), "utf-8")
            java = _java()
            classpath = str(libs / "*")  # the JVM expands the wildcard itself
            jvm_common = [
                f"-Dlog4j2.configurationFile={log4j}",
                f"-Dkafka.logs.dir={self.logs_dir}",
                "-Djava.awt.headless=true",
                # Kafka's own shutdown hook logs; keep Log4j alive until the JVM is gone.
                "-Dlog4j2.shutdownHookEnabled=false",
            ]

            t0 = time.monotonic()
            self._format_storage(java, classpath, jvm_common, deadline)
            self.timings["format"] = time.monotonic() - t0

            log = open(self.log_file, "ab")  # kept open for the broker's whole life
            log.write(f"\n===== cpu-platform LocalKafka start {time.ctime()} =====\n".encode())
            log.flush()
            self._log = log
            self._log_offset = log.tell()
            cmd = [
                java,
                f"-Xmx{self.heap}",
                f"-Xms{self.heap}",
                *jvm_common,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(self.properties_file),
            ]
            t0 = time.monotonic()
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
            _LIVE.add(self)
            try:
                self._wait_ready(deadline)
            except BaseException:
                self.stop()
                raise
            self.timings["ready"] = time.monotonic() - t0

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the broker (clean shutdown), SIGKILL after ``timeout``. Idempotent."""
        with self._lock:
            proc = self._proc
            if proc is not None:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                        proc.wait(timeout=10)
                self._proc = None
            _LIVE.discard(self)
            self._close_log()

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running() else "stopped"
        return f"<LocalKafka {self.bootstrap_servers} {state} data_dir={self.data_dir}>"

    # -- internals ---------------------------------------------------------------------------

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def _cluster_id(self) -> str:
        path = self.data_dir / _CLUSTER_ID_FILE
        with contextlib.suppress(FileNotFoundError):
            existing = path.read_text("utf-8").strip()
            if existing:
                return existing
        cluster_id = _new_cluster_id()
        path.write_text(cluster_id + "\n", "utf-8")
        return cluster_id

    def _server_properties(self) -> str:
        port, ctrl = self.port, self.controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(_NODE_ID),
            "controller.quorum.voters": f"{_NODE_ID}@127.0.0.1:{ctrl}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self._kraft_dir),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        lines = [f"# Written by cpu_platform.devstack.kafka (Kafka {KAFKA_VERSION}); regenerated"]
        lines.append("# on every start, do not edit.")
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _format_storage(
        self, java: str, classpath: str, jvm_common: list[str], deadline: float
    ) -> None:
        cmd = [
            java,
            "-Xmx256m",
            *jvm_common,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self._cluster_id(),
            "-c",
            str(self.properties_file),
            "--ignore-formatted",
        ]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=max(5.0, deadline - time.monotonic()),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.output or ""
            if isinstance(out, bytes):
                out = out.decode("utf-8", "replace")
            raise RuntimeError(f"kafka StorageTool format timed out:\n{_tail(out)}") from exc
        if proc.returncode != 0:
            raise RuntimeError(
                f"kafka StorageTool format failed (exit {proc.returncode}) for "
                f"{self.data_dir}:\n{_tail(proc.stdout)}"
            )

    def _log_since_start(self) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(self._log_offset)
                return fh.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"(cannot read {self.log_file}: {exc})"

    def _failure_report(self, headline: str) -> str:
        """The headline, the broker's first error lines, then the tail of broker.out."""
        text = self._log_since_start()
        errors = [
            line
            for line in text.splitlines()
            if (" ERROR " in line or " FATAL " in line or "Exception: " in line)
            and not line.startswith(("\t", " "))
        ]
        report = [headline]
        if errors:
            report += ["--- first errors ---", *errors[:8]]
        report += [f"--- {self.log_file} (tail) ---", _tail(text, 40)]
        return "\n".join(report)

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        last_error: str = "broker port not open yet"
        fatal_seen_at: float | None = None
        while True:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(
                    self._failure_report(
                        f"Kafka broker exited with code {code} during start-up "
                        f"({self.bootstrap_servers}, {self.data_dir})."
                    )
                )
            now = time.monotonic()
            if fatal_seen_at is None and any(m in self._log_since_start() for m in _FATAL_STARTUP):
                fatal_seen_at = now
            if fatal_seen_at is not None and now - fatal_seen_at > _FATAL_GRACE:
                # Kafka's orderly exit after a fatal start-up error can take several seconds.
                raise RuntimeError(
                    self._failure_report(
                        f"Kafka broker hit a fatal error during start-up "
                        f"({self.bootstrap_servers}, {self.data_dir})."
                    )
                )
            remaining = deadline - now
            if remaining <= 0:
                raise RuntimeError(
                    self._failure_report(
                        f"Kafka broker at {self.bootstrap_servers} not ready in time "
                        f"(last check: {last_error})."
                    )
                )
            if fatal_seen_at is None and _port_open(self.port):
                try:
                    probe = functools.partial(
                        _probe_cluster, self.bootstrap_servers, min(_PROBE_BUDGET, remaining)
                    )
                    _run_coro(probe)
                    return
                except Exception as exc:
                    last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)


async def _probe_cluster(bootstrap_servers: str, budget: float) -> None:
    """Succeeds once the broker answers metadata with itself registered (unfenced)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=max(1000, int(budget * 1000)),
            retry_backoff_ms=100,
        )
        try:
            await admin.start()
            info = await admin.describe_cluster()
            if not info.get("brokers"):
                raise RuntimeError("metadata lists no live broker yet")
            if info.get("controller_id", -1) < 0:
                raise RuntimeError("metadata names no controller yet")
        finally:
            await admin.close()

    await asyncio.wait_for(probe(), budget)


# --------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------


def ensure_topics(
    bootstrap_servers: str,
    topics: dict[str, int],
    timeout: float = 30,
    *,
    replication_factor: int = 1,
    configs: dict[str, dict[str, str]] | None = None,
) -> None:
    """Create the topics that do not exist yet (``name -> partitions``); idempotent.

    ``configs`` gives topic-level settings (``retention.ms``...) a new topic is created with.

    Existing topics are left as they are (never re-partitioned). Retriable errors are retried
    until ``timeout``; a non-retriable error (bad name, bad partition count, ...) raises at once.
    Returns once every topic is in the broker's metadata with a leader for each partition.
    """
    if not topics:
        return
    _run_coro(
        functools.partial(
            _ensure_topics,
            bootstrap_servers,
            dict(topics),
            timeout,
            replication_factor,
            configs or {},
        )
    )


async def _ensure_topics(
    bootstrap_servers: str,
    topics: dict[str, int],
    budget: float,
    replication_factor: int,
    configs: dict[str, dict[str, str]],
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, for_code

    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    last_error: BaseException | None = None

    while loop.time() < deadline:
        remaining = deadline - loop.time()
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=max(1000, int(min(remaining, 15.0) * 1000)),
        )
        try:
            await asyncio.wait_for(admin.start(), remaining)
            existing = set(await admin.list_topics())
            missing = [name for name in topics if name not in existing]
            if missing:
                response = await admin.create_topics(
                    [
                        NewTopic(n, topics[n], replication_factor, topic_configs=configs.get(n))
                        for n in missing
                    ],
                    timeout_ms=max(1000, int(min(remaining, 15.0) * 1000)),
                )
                retry = False
                for entry in response.topic_errors:
                    name, code = entry[0], entry[1]
                    message = entry[2] if len(entry) > 2 else None
                    if code in (0, 36):  # NoError, TopicAlreadyExists
                        continue
                    error_cls = for_code(code)
                    if getattr(error_cls, "retriable", False):
                        retry = True
                        last_error = error_cls(f"{name}: {message}")
                        continue
                    raise RuntimeError(
                        f"cannot create topic {name!r} on {bootstrap_servers}: "
                        f"{error_cls.__name__} ({code}) {message or ''}".rstrip()
                    )
                if retry:
                    await asyncio.sleep(0.3)
                    continue
            if await _topics_have_leaders(admin, list(topics)):
                return
            last_error = RuntimeError("topics created but not all partitions have a leader yet")
        except (TimeoutError, KafkaError, OSError) as exc:
            last_error = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.3)
    raise RuntimeError(
        f"ensure_topics({sorted(topics)}) on {bootstrap_servers} did not succeed in "
        f"{budget:g}s: {type(last_error).__name__}: {last_error}"
    )


async def _topics_have_leaders(admin: Any, names: list[str]) -> bool:
    described = await admin.describe_topics(names)
    seen = {}
    for topic in described:
        if topic.get("error_code", 0) != 0:
            return False
        partitions = topic.get("partitions") or []
        if not partitions or any(p.get("leader", -1) < 0 for p in partitions):
            return False
        seen[topic["topic"]] = True
    return all(name in seen for name in names)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cpu_platform.devstack.kafka",
        description=f"Local Apache Kafka {KAFKA_VERSION} tooling (no Docker).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch and cache the broker jars; print the libs directory")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        try:
            libs = ensure_kafka_jars()
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(libs)
        return 0
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
