"""pytest plugin: a PostgreSQL server per test session and a fresh database per service.

Load it with ``-p cpu_platform.testing.postgres_fixtures`` or, in a conftest.py,
``pytest_plugins = ["cpu_platform.testing.postgres_fixtures"]``.

Fixtures
    ``postgres_server`` (session): the server. With ``CPU_TEST_POSTGRES_URL`` set (a server
        URL such as ``postgresql://user:pw@host:5432``) that external server is used;
        otherwise a :class:`~cpu_platform.devstack.postgres.LocalPostgres` is started once in
        a fresh temporary directory (installed from Debian's packages when missing) and is
        stopped and deleted at session end. Either way it offers ``url(dbname, driver=...)``,
        ``create_database(name)`` and ``drop_database(name)``.
    ``make_database`` (function): ``make_database("intake")`` creates a new empty database
        ``intake_<12 hex>`` and returns its ``postgresql+asyncpg://`` URL; every database it
        made is dropped at the end of the test (open connections are terminated first).
    ``service_databases`` (session): ``{"intake": url, "casework": url, ...}``, one fresh
        database per service for the whole session, dropped at session end.

The local server never outlives the session: the fixture stops it at session end; if the
process dies first, the ``atexit`` hook or the watchdog in ``LocalPostgres`` stops it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from cpu_platform.devstack.postgres import LocalPostgres

__all__ = [
    "ENV_URL",
    "SERVICES",
    "ExternalPostgres",
    "PostgresServer",
    "database_name",
    "make_database",
    "postgres_server",
    "service_databases",
]

ENV_URL = "CPU_TEST_POSTGRES_URL"
SERVICES = ("intake", "casework", "forensics", "icac", "reporting")

T = TypeVar("T")


class PostgresServer(Protocol):
    def url(self, dbname: str, driver: str = "postgresql+asyncpg") -> str: ...
    def create_database(self, name: str) -> None: ...
    def drop_database(self, name: str) -> None: ...
    def database_exists(self, name: str) -> bool: ...


def _run_coro(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop."""

    async def runner() -> T:
        return await factory()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, runner()).result()


class ExternalPostgres:
    """A server we do not manage, given as ``postgresql://user:pw@host:port[/maintenance_db]``.

    Databases are created and dropped with asyncpg (no local PostgreSQL tools needed).
    """

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        if not parts.scheme.startswith(("postgresql", "postgres")) or not parts.hostname:
            raise ValueError(f"{ENV_URL} must look like postgresql://user:pw@host:port")
        self._netloc = parts.netloc
        self._query = parts.query
        self.maintenance_db = parts.path.lstrip("/") or "postgres"

    def __repr__(self) -> str:
        return f"ExternalPostgres(host={self._netloc.rpartition('@')[2]!r})"

    def url(self, dbname: str, driver: str = "postgresql+asyncpg") -> str:
        return urlunsplit((driver, self._netloc, "/" + quote(dbname, safe=""), self._query, ""))

    def _execute(self, *statements: str, args: tuple[Any, ...] = ()) -> list[Any]:
        import asyncpg

        dsn = self.url(self.maintenance_db, driver="postgresql")

        async def go() -> list[Any]:
            conn = await asyncpg.connect(dsn)
            try:
                results = []
                for sql in statements:
                    if args and "$1" in sql:
                        results.append(await conn.fetch(sql, *args))
                    else:
                        results.append(await conn.execute(sql))
                return results
            finally:
                await conn.close()

        return _run_coro(go)

    def database_exists(self, name: str) -> bool:
        rows = self._execute("SELECT 1 FROM pg_database WHERE datname = $1", args=(name,))[0]
        return bool(rows)

    def create_database(self, name: str) -> None:
        if self.database_exists(name):
            return
        try:
            self._execute(f"CREATE DATABASE {_quote_ident(name)}")
        except Exception as exc:  # asyncpg.DuplicateDatabaseError on a race
            if type(exc).__name__ != "DuplicateDatabaseError":
                raise

    def drop_database(self, name: str) -> None:
        self._execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)",
            args=(name,),
        )


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def database_name(service: str) -> str:
    """``<service>_<12 hex>``, the service name folded to ``[a-z0-9_]``."""
    base = re.sub(r"[^a-z0-9_]", "_", service.lower()).strip("_") or "db"
    return f"{base[:40]}_{secrets.token_hex(6)}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (external via CPU_TEST_POSTGRES_URL, else local)."""
    external = os.environ.get(ENV_URL)
    if external:
        yield ExternalPostgres(external)
        return
    # Not tmp_path_factory: its root is 0700 and kept after the run. mkdtemp gives a
    # directory of our own; LocalPostgres adds o+x to it for the postgres user.
    base = Path(tempfile.mkdtemp(prefix="cpu-test-postgres-"))
    server = LocalPostgres(base / "cluster")
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def make_database(postgres_server: PostgresServer) -> Iterator[Callable[[str], str]]:
    """Factory: ``make_database("intake")`` -> URL of a new empty database, dropped after."""
    created: list[str] = []

    def make(service_name: str) -> str:
        name = database_name(service_name)
        postgres_server.create_database(name)
        created.append(name)
        return postgres_server.url(name)

    yield make
    errors: list[BaseException] = []
    for name in reversed(created):
        try:
            postgres_server.drop_database(name)
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture(scope="session")
def service_databases(postgres_server: PostgresServer) -> Iterator[dict[str, str]]:
    """One fresh database per service for the whole session: ``{service: asyncpg URL}``."""
    names = {service: database_name(service) for service in SERVICES}
    try:
        for name in names.values():
            postgres_server.create_database(name)
        yield {service: postgres_server.url(name) for service, name in names.items()}
    finally:
        for name in names.values():
            postgres_server.drop_database(name)
