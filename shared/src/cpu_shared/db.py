"""Database engines and migrations. Each service owns one database and its own migrations."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

#: A pooled connection idle for longer than this is checked (one round trip) before use.
PING_IDLE_SECONDS = 1.0
_RETURNED_AT = "cpu_returned_at"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so relay and handlers can share it.

    On PostgreSQL at most ``pool_size`` connections, each kept open once opened (no overflow):
    an overflow connection is closed when it comes back, so every burst of load paid for new
    connections (connect, type introspection, every statement prepared again)."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=10)

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        # Pessimistic disconnect handling in one round trip, for a connection that sat idle
        # in the pool (where a restart or a firewall's idle timeout kills connections); one
        # that worked a moment ago is not checked again. SQLAlchemy's own pre-ping for
        # asyncpg takes three (BEGIN, ``;``, ROLLBACK: a transaction for pgbouncer's
        # transaction mode, which no deployment here uses). A dead connection is discarded
        # and the pool hands out another.
        returned = record.info.get(_RETURNED_AT)
        if returned is not None and time.monotonic() - returned < PING_IDLE_SECONDS:
            return
        try:
            dbapi_conn.run_async(lambda connection: connection.fetchrow(";"))
        except Exception as exc:
            raise DisconnectionError() from exc

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def session_scope(
    factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits on success and rolls back on any error."""
    async with factory() as session, session.begin():
        yield session


async def check_database(engine: AsyncEngine, timeout: float) -> bool:
    """True when the store answers ``SELECT 1`` within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def alembic_config(migrations_package: str, url: str) -> Config:
    """An Alembic config for the migrations shipped inside a service package."""
    location = resources.files(migrations_package)
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade_to_head(migrations_package: str, url: str) -> None:
    """Apply every migration of the package (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(migrations_package, url), "head")


async def apply_migrations(migrations_package: str, url: str) -> None:
    # Alembic's async env runs its own event loop, so it needs a thread without one.
    await asyncio.to_thread(upgrade_to_head, migrations_package, url)
