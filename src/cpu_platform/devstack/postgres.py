"""A throwaway local PostgreSQL server for development and tests (no Docker).

The server binaries come from Debian's ``postgresql`` package. When they are missing and we
are root, :func:`ensure_postgres_installed` installs them with apt (serialised by a file lock);
otherwise it says what to install.

:class:`LocalPostgres` runs one cluster out of a directory of its own::

    base_dir/data   the cluster (initdb runs once; data survives stop()/start())
    base_dir/run    unix socket and the server log (postgres.log)

It listens only on 127.0.0.1 at a port fixed for the life of the object, trusts every local
connection, and has the durability settings a test server does not need switched off
(fsync, synchronous_commit, full_page_writes). The superuser is ``app`` (no password).

Running as root
    PostgreSQL refuses to run as root, so initdb and pg_ctl run as the ``postgres`` OS user
    (``runuser -u postgres --``). ``data`` and ``run`` are created and chowned to ``postgres``.
    That user must also be able to *traverse* every parent of ``base_dir``: directories made
    by ``tempfile.mkdtemp`` or by pytest's ``tmp_path_factory`` (``/tmp/pytest-of-root``) are
    mode 0700 and owned by root, so :meth:`LocalPostgres.start` adds the search bit only
    (``o+x``, never read) to each parent that lacks it. Pick a ``base_dir`` whose parents you
    do not mind getting ``o+x``: a fresh directory under ``/tmp`` is the usual choice.

Cleanup: a server must never outlive the process that started it
    1. :meth:`LocalPostgres.stop` (also called by the context manager and by the pytest
       fixtures at session end) stops it with ``pg_ctl stop -m fast``.
    2. An ``atexit`` hook stops every server this process started and did not stop.
    3. A watchdog process (one per running server, in its own session so a Ctrl-C does not
       kill it first) holds the read end of a pipe whose write end only this process has. If
       this process dies without stopping the server (SIGKILL, SIGTERM, crash), the pipe
       closes and the watchdog runs ``pg_ctl stop -m fast``. ``stop()`` disarms it first.
       (A child made by a bare ``os.fork()`` inherits the write end, so the watchdog then also
       waits for that child to exit.)

CLI: ``python -m cpu_platform.devstack.postgres install`` installs if needed and prints the
directory of the server binaries.
"""

from __future__ import annotations

import argparse
import atexit
import fcntl
import json
import logging
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

__all__ = [
    "APT_PACKAGES",
    "DEFAULT_USER",
    "LocalPostgres",
    "PostgresError",
    "ensure_postgres_installed",
    "find_pg_bindir",
    "main",
]

log = logging.getLogger(__name__)

PG_LIB_ROOT = Path("/usr/lib/postgresql")
APT_PACKAGES = ("postgresql",)
DEFAULT_USER = "app"
HOST = "127.0.0.1"
OS_USER = "postgres"

# postgresql-common reads this directory (``include_dir`` in createcluster.conf) before it
# creates the "main" cluster in postinst; with this drop-in it creates none, so no cluster
# service on port 5432 is created, started or needed.
_CREATECLUSTER_DROPIN = Path("/etc/postgresql-common/createcluster.d/00-cpu-platform.conf")
_INSTALL_LOCK = Path(tempfile.gettempdir()) / "cpu_platform-postgres-install.lock"
_INSTALL_HINT = "apt-get update && apt-get install -y --no-install-recommends " + " ".join(
    APT_PACKAGES
)

# Server settings for every start (passed with ``-c``): a throwaway test server.
SERVER_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresError(RuntimeError):
    """A PostgreSQL tool failed; the message carries its output."""


# --------------------------------------------------------------------------- installation


def _version_key(path: Path) -> tuple[int, ...]:
    parts = re.findall(r"\d+", path.name)
    return tuple(int(p) for p in parts) if parts else (-1,)


def find_pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``pg_ctl``."""
    if not PG_LIB_ROOT.is_dir():
        return None
    candidates = [
        d / "bin"
        for d in PG_LIB_ROOT.iterdir()
        if (d / "bin" / "initdb").is_file() and (d / "bin" / "pg_ctl").is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda b: _version_key(b.parent))


def _is_root() -> bool:
    return os.geteuid() == 0


def _run_apt(args: list[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(
        ["apt-get", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-4000:]
        raise PostgresError(f"apt-get {' '.join(args)} failed ({proc.returncode}):\n{tail}")


def ensure_postgres_installed() -> Path:
    """Return the PostgreSQL server bindir, installing Debian's ``postgresql`` if missing.

    As root: ``apt-get update`` then ``apt-get install -y --no-install-recommends postgresql``
    (DEBIAN_FRONTEND=noninteractive), under a file lock so parallel callers run apt once.
    The package's own "main" cluster is not created (see ``_CREATECLUSTER_DROPIN``) and is
    never used. Not root: raise :class:`RuntimeError` saying what to install.
    """
    bindir = find_pg_bindir()
    if bindir is not None:
        return bindir
    if not _is_root():
        raise RuntimeError(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found under "
            f"{PG_LIB_ROOT}/*/bin. Install Debian's PostgreSQL server as root: "
            f"`{_INSTALL_HINT}`"
        )
    with open(_INSTALL_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            bindir = find_pg_bindir()  # another caller may have installed it meanwhile
            if bindir is not None:
                return bindir
            log.warning("PostgreSQL not found; installing with apt: %s", " ".join(APT_PACKAGES))
            _CREATECLUSTER_DROPIN.parent.mkdir(parents=True, exist_ok=True)
            _CREATECLUSTER_DROPIN.write_text(
                "# Written by cpu_platform.devstack.postgres: tests run their own clusters.\n"
                "create_main_cluster = false\n"
            )
            _run_apt(["update"])
            _run_apt(
                [
                    "install",
                    "-y",
                    "--no-install-recommends",
                    "-o",
                    "Dpkg::Options::=--force-confdef",
                    "-o",
                    "Dpkg::Options::=--force-confold",
                    *APT_PACKAGES,
                ]
            )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    bindir = find_pg_bindir()
    if bindir is None:
        raise PostgresError(
            f"apt-get installed {' '.join(APT_PACKAGES)} but no initdb/pg_ctl is under "
            f"{PG_LIB_ROOT}/*/bin"
        )
    return bindir


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _make_traversable(path: Path, uid: int, gids: set[int]) -> None:
    """Give ``uid`` search permission on ``path`` and all its parents (adds x bits only)."""
    for p in [*reversed(path.parents), path]:
        st = p.stat()
        if st.st_uid == uid:
            needed = stat.S_IXUSR
        elif st.st_gid in gids:
            needed = stat.S_IXGRP
        else:
            needed = stat.S_IXOTH
        if not st.st_mode & needed:
            log.info("adding search permission to %s for the postgres user", p)
            os.chmod(p, stat.S_IMODE(st.st_mode) | needed)


_WATCHDOG = r"""
import json, subprocess, sys
cmd = json.loads(sys.argv[1])
data = sys.stdin.buffer.read()
if not data:
    subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd="/", check=False)
"""

_live_lock = threading.Lock()
_live: set[LocalPostgres] = set()


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        try:
            server.stop()
        except Exception:  # exiting anyway; the watchdog is the last resort
            log.exception("could not stop PostgreSQL in %s", server.base_dir)


# --------------------------------------------------------------------------- the server


class LocalPostgres:
    """One local PostgreSQL cluster in ``base_dir``, on ``127.0.0.1:<port>``.

    ``port`` defaults to a free port chosen now and kept for the object's life, so a
    stop()/start() cycle (a simulated outage) comes back at the same address with the same
    data. Use as a context manager (start on enter, stop on exit) or call start()/stop().
    """

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.port = port if port is not None else _free_port()
        self.host = HOST
        self.user = DEFAULT_USER
        self.data_dir = self.base_dir / "data"
        self.run_dir = self.base_dir / "run"
        self.socket_dir = self.run_dir
        self.log_file = self.run_dir / "postgres.log"
        self.bindir: Path | None = None
        self.last_initdb_seconds: float | None = None
        self.last_start_seconds: float | None = None
        self._as_postgres = _is_root()
        self._watchdog: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"LocalPostgres(base_dir={str(self.base_dir)!r}, port={self.port})"

    # -- running tools --------------------------------------------------------------------

    def _tool(self, name: str) -> str:
        if self.bindir is None:
            self.bindir = ensure_postgres_installed()
        return str(self.bindir / name)

    def _server_cmd(self, args: list[str]) -> list[str]:
        """A command for initdb/pg_ctl: as the postgres OS user when we are root."""
        if self._as_postgres:
            return ["runuser", "-u", OS_USER, "--", *args]
        return args

    def _run(self, args: list[str], *, timeout: float, what: str, stdin: str = "") -> str:
        try:
            proc = subprocess.run(
                args,
                input=stdin,
                capture_output=True,
                text=True,
                cwd="/",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"{what} timed out after {timeout}s: {shlex.join(args)}") from exc
        if proc.returncode != 0:
            msg = f"{what} failed ({proc.returncode}): {shlex.join(args)}\n"
            msg += (proc.stdout + proc.stderr)[-4000:]
            if what.startswith("pg_ctl start") and self.log_file.exists():
                msg += "\n--- server log ---\n" + self.log_file.read_text(errors="replace")[-4000:]
            raise PostgresError(msg)
        return proc.stdout

    # -- lifecycle ------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for d in (self.data_dir, self.run_dir):
            d.mkdir(exist_ok=True)
        if self._as_postgres:
            try:
                pw = pwd.getpwnam(OS_USER)
            except KeyError as exc:
                raise PostgresError(
                    f"no '{OS_USER}' OS user: PostgreSQL cannot run as root and Debian's "
                    f"postgresql package normally creates that user ({_INSTALL_HINT})"
                ) from exc
            gids = set(os.getgrouplist(OS_USER, pw.pw_gid))
            _make_traversable(self.base_dir, pw.pw_uid, gids)
            for d in (self.data_dir, self.run_dir):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)  # the server refuses a group/world-accessible PGDATA
        os.chmod(self.run_dir, 0o700)

    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    def _initdb(self, timeout: float) -> None:
        t0 = time.monotonic()
        self._run(
            self._server_cmd(
                [
                    self._tool("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            timeout=timeout,
            what="initdb",
        )
        self.last_initdb_seconds = time.monotonic() - t0

    def _server_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            pid = int(first.strip())
        except (OSError, IndexError, ValueError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm in ("postgres", "postmaster") else None

    def is_running(self) -> bool:
        """Whether a server is running on this data directory (by any process)."""
        return self._server_pid() is not None

    def start(self, timeout: float = 60) -> None:
        """Install if needed, initdb once, then start and wait until it accepts connections.

        A no-op when this object's server is already running. A server left running on this
        data directory by some other process (say, a crashed earlier run) is stopped first.
        """
        if self.is_running():
            if self in _live:
                return
            log.warning("stopping a PostgreSQL left running in %s", self.data_dir)
            self._pg_ctl_stop(timeout)
        self._tool("pg_ctl")  # resolve (install) before touching directories
        self._prepare_dirs()
        if not self.initialized():
            self._initdb(timeout)
        opts = ["-h", self.host, "-p", str(self.port), "-k", str(self.socket_dir)]
        for key, value in SERVER_SETTINGS.items():
            opts += ["-c", f"{key}={value}"]
        t0 = time.monotonic()
        self._run(
            self._server_cmd(
                [
                    self._tool("pg_ctl"),
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(int(max(timeout, 1))),
                    "-o",
                    shlex.join(opts),  # pg_ctl hands -o to a shell
                ]
            ),
            timeout=timeout + 10,
            what="pg_ctl start",
        )
        self.last_start_seconds = time.monotonic() - t0
        with _live_lock:
            _live.add(self)
        self._arm_watchdog()

    def _stop_cmd(self, timeout: float) -> list[str]:
        return self._server_cmd(
            [
                self._tool("pg_ctl"),
                "stop",
                "-D",
                str(self.data_dir),
                "-m",
                "fast",
                "-w",
                "-t",
                str(int(max(timeout, 1))),
            ]
        )

    def _pg_ctl_stop(self, timeout: float) -> None:
        self._run(self._stop_cmd(timeout), timeout=timeout + 10, what="pg_ctl stop")

    def stop(self, timeout: float = 60) -> None:
        """Stop the server (``pg_ctl stop -m fast``). Idempotent; the data are kept."""
        self._disarm_watchdog()
        with _live_lock:
            _live.discard(self)
        if self.is_running():
            self._pg_ctl_stop(timeout)

    def _arm_watchdog(self) -> None:
        self._disarm_watchdog()
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, json.dumps(self._stop_cmd(60))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
        )

    def _disarm_watchdog(self) -> None:
        wd, self._watchdog = self._watchdog, None
        if wd is None:
            return
        try:
            assert wd.stdin is not None
            wd.stdin.write(b"disarm")
            wd.stdin.close()
        except OSError:
            pass  # it is gone already
        try:
            wd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            wd.kill()
            wd.wait()

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases ------------------------------------------------------------------------

    def url(self, dbname: str, driver: str = "postgresql+asyncpg") -> str:
        """E.g. ``postgresql+asyncpg://app@127.0.0.1:54321/intake``."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def psql(
        self,
        sql: str,
        dbname: str = "postgres",
        variables: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> str:
        """Run SQL with psql as ``app`` over TCP; returns unaligned, tuples-only output.

        The SQL is read from standard input, so psql interpolates ``variables``:
        ``:'v'`` as a quoted literal, ``:"v"`` as a quoted identifier.
        Each statement runs in its own transaction.
        """
        var_args: list[str] = []
        for key, value in (variables or {}).items():
            var_args += ["-v", f"{key}={value}"]
        return self._run(
            [
                self._tool("psql"),
                "-X",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                dbname,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                *var_args,
            ],
            timeout=timeout,
            what="psql",
            stdin=sql,
        )

    def database_exists(self, name: str) -> bool:
        out = self.psql("SELECT 1 FROM pg_database WHERE datname = :'db';", variables={"db": name})
        return out.strip() == "1"

    def create_database(self, name: str) -> None:
        """Create an empty database owned by ``app``; no-op if it exists."""
        if self.database_exists(name):
            return
        try:
            self.psql('CREATE DATABASE :"db";', variables={"db": name})
        except PostgresError as exc:
            if "already exists" not in str(exc):
                raise

    def drop_database(self, name: str) -> None:
        """Drop a database, terminating its connections first; no-op if it does not exist."""
        self.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = :'db' AND pid <> pg_backend_pid();\n"
            'DROP DATABASE IF EXISTS :"db" WITH (FORCE);',
            variables={"db": name},
        )

    def remove(self) -> None:
        """Stop the server and delete ``base_dir`` entirely."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cpu_platform.devstack.postgres",
        description="Local PostgreSQL for development and tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="install Debian's postgresql if missing; print the bindir")
    args = parser.parse_args(argv)
    if args.command == "install":
        try:
            print(ensure_postgres_installed())
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
