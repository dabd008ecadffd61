"""The database side of deploy/, against a real PostgreSQL of its own (a throwaway cluster,
because the init script creates cluster-wide roles):

* deploy/compose/postgres/init-databases.sh creates one role and one database per service,
  owned by that role, which no other role may connect to; running it again changes nothing;
* deploy/tools/cpu_migrate.py (the `migrate` init container of every Kubernetes Deployment)
  migrates a service's database as the service's own role, several replicas at once without
  conflict, because it holds an advisory lock for the whole upgrade.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "deploy" / "compose" / "postgres" / "init-databases.sh"
MIGRATE = ROOT / "deploy" / "tools" / "cpu_migrate.py"
SERVICES = ("intake", "casework", "forensics", "icac", "reporting")
#: A service whose migrations are committed and stable; any would do.
SERVICE = "forensics"


def _migrate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpu_migrate", MIGRATE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from cpu_platform.devstack.postgres import LocalPostgres

    base = Path(tempfile.mkdtemp(prefix="cpu-deploy-postgres-"))
    server = LocalPostgres(base / "cluster")
    try:
        server.start()
    except Exception as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"no local PostgreSQL to test against: {type(exc).__name__}: {exc}")
    try:
        yield server
    finally:
        server.remove()
        shutil.rmtree(base, ignore_errors=True)


def _run_init(cluster, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{cluster.bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "PGHOST": cluster.host,
        "PGPORT": str(cluster.port),
        "POSTGRES_USER": cluster.user,
        **{f"{s.upper()}_DB_PASSWORD": pw for s, pw in passwords.items()},
    }
    return subprocess.run(
        ["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def databases(cluster) -> dict[str, str]:
    """Runs the init script once; returns each service's URL as its own role."""
    passwords = {s: secrets.token_hex(12) for s in SERVICES}
    result = _run_init(cluster, passwords)
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        s: f"postgresql+asyncpg://{s}:{pw}@{cluster.host}:{cluster.port}/{s}"
        for s, pw in passwords.items()
    }


def test_init_script_creates_one_private_database_per_service(cluster, databases) -> None:
    owners = cluster.psql(
        "SELECT datname || ':' || pg_get_userbyid(datdba) FROM pg_database "
        "WHERE datname IN ('intake', 'casework', 'forensics', 'icac', 'reporting') "
        "ORDER BY datname;"
    ).split()
    assert owners == sorted(f"{s}:{s}" for s in SERVICES)
    for service in SERVICES:
        for other in SERVICES:
            allowed = cluster.psql(
                "SELECT has_database_privilege(:'role', :'db', 'CONNECT');",
                variables={"role": other, "db": service},
            ).strip()
            assert allowed == ("t" if other == service else "f"), (other, service)
        login = cluster.psql(
            "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = :'role';",
            variables={"role": service},
        )
        assert login.strip() == "t|f"
    # A second run (the image runs it only on an empty data directory, but an operator may
    # run it by hand) changes nothing and does not fail.
    again = _run_init(cluster, {s: secrets.token_hex(12) for s in SERVICES})
    assert again.returncode == 0, again.stdout + again.stderr


def _migrate(url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, f"{SERVICE.upper()}_DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, str(MIGRATE), SERVICE, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from cpu_shared.db import alembic_config

    config = alembic_config(f"cpu_{SERVICE}.migrations", "sqlite+aiosqlite://")
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head
    return head


def test_replicas_migrating_at_once_do_not_conflict(cluster, databases) -> None:
    url = databases[SERVICE]
    runs = [_migrate(url) for _ in range(3)]
    outputs = [run.communicate(timeout=240)[0] for run in runs]
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert f"{SERVICE} is at head" in output
    version = cluster.psql("SELECT version_num FROM alembic_version;", dbname=SERVICE).split()
    assert version == [_head_revision()]
    # Tables belong to the service's role, not to an administrator.
    owners = set(
        cluster.psql(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public';",
            dbname=SERVICE,
        ).split()
    )
    assert owners == {SERVICE}


def test_a_migration_waits_for_the_one_in_progress(cluster, databases) -> None:
    """While another session holds the service's migration lock, cpu-migrate waits (here: up
    to its --lock-timeout, then fails without touching the database)."""
    key = _migrate_module().lock_key(SERVICE)
    holder = subprocess.Popen(
        [
            str(Path(cluster.bindir) / "psql"),
            "-X",
            "-h",
            cluster.host,
            "-p",
            str(cluster.port),
            "-U",
            cluster.user,
            "-d",
            SERVICE,
            "-c",
            f"SELECT pg_advisory_lock({key}); SELECT pg_sleep(60);",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while "1" not in cluster.psql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted;"
        ):
            assert time.monotonic() < deadline, "the holder never got the lock"
            time.sleep(0.1)
        blocked = _migrate(databases[SERVICE], "--lock-timeout", "2")
        output = blocked.communicate(timeout=120)[0]
        assert blocked.returncode == 1, output
        assert "TimeoutError" in output
        password = databases[SERVICE].split("@")[0].rsplit(":", 1)[1]
        assert password not in output  # the URL (with its password) is never printed
    finally:
        # Ending the client is not enough: its server session would sleep on, holding the lock.
        cluster.psql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory';")
        holder.kill()
        holder.wait(timeout=30)
    unblocked = _migrate(databases[SERVICE], "--lock-timeout", "30")
    assert unblocked.wait(timeout=240) == 0, unblocked.communicate()[0]


def test_lock_keys_are_distinct_and_apart_from_the_outbox_relay() -> None:
    from cpu_shared.messaging import outbox

    keys = {_migrate_module().lock_key(s) for s in SERVICES}
    assert len(keys) == len(SERVICES)
    assert outbox._RELAY_LOCK_KEY not in keys
    assert all(0 < k < 2**63 for k in keys)
