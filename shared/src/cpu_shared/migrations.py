"""The body of every service's Alembic ``env.py``, so the five stay identical."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Any fixed number; advisory locks are per database, so each service has its own.
_LOCK_KEY = 0x0C0_6D16


def _do_run(connection: Connection, target_metadata: MetaData | None) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together migrate one at a time; the others wait, then find
            # nothing left to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        context.run_migrations()


async def _run_async(url: str, target_metadata: MetaData | None) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_do_run, target_metadata)
    finally:
        await engine.dispose()


def run_alembic_env(target_metadata: MetaData | None = None) -> None:
    """Run migrations online against ``sqlalchemy.url`` (offline mode renders SQL)."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_async(url, target_metadata))
