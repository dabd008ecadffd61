"""Low-level store helpers for bulk work: locks, COPY, arrays, and both dialects.

PostgreSQL is the production store: bulk rows go in with ``COPY`` (asyncpg's binary
``copy_records_to_table``) on the connection of the caller's transaction, look-ups by many keys
take one array parameter (``= ANY($1)``), and writers that must not interleave take a
transaction-scoped advisory lock. SQLite (``make up``) gets the plain equivalents: executemany,
``IN (...)`` in chunks, and its database-wide write lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# Advisory lock keys (any fixed numbers, distinct from the outbox relay's).
INGEST_LOCK: Final = 0x1CAC_0001
HASH_SET_LOCK: Final = 0x1CAC_0002
SQLITE_CHUNK: Final = 500


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def lock(session: AsyncSession, key: int) -> None:
    """Hold ``key`` until the transaction ends (PostgreSQL), or take SQLite's write lock now
    (a no-op write), so that the check-then-write that follows cannot interleave."""
    if is_postgres(session):
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    else:
        await session.execute(sa.text("UPDATE icac_cluster SET size = size WHERE 0"))


async def copy_rows(
    session: AsyncSession, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert many rows in the caller's transaction: COPY on PostgreSQL, else executemany.
    A statement must already have run in the transaction (it has: every caller locks first)."""
    if not rows:
        return
    if is_postgres(session):
        conn = await session.connection()
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(table.name, records=rows, columns=list(columns))
        return
    await session.execute(sa.insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def chunks(values: Sequence[Any], size: int = SQLITE_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


async def rows_where_in(
    session: AsyncSession,
    query: sa.Select[Any],
    column: sa.ColumnElement[Any],
    values: Sequence[Any],
    array_type: str,
) -> list[sa.Row[Any]]:
    """``query`` restricted to ``column`` in ``values``: one ``= ANY(:values)`` on PostgreSQL
    (``array_type`` such as ``varchar[]`` or ``uuid[]``), chunks of ``IN`` on SQLite."""
    if not values:
        return []
    if is_postgres(session):
        values_param = sa.bindparam("values", list(values), type_=_array(array_type))
        stmt = query.where(column == sa.func.any(values_param))
        return list((await session.execute(stmt)).all())
    out: list[sa.Row[Any]] = []
    for part in chunks(list(values)):
        out.extend((await session.execute(query.where(column.in_(part)))).all())
    return out


def _array(array_type: str) -> Any:
    from sqlalchemy.dialects import postgresql

    base = {
        "varchar[]": sa.String(),
        "uuid[]": sa.Uuid(),
        "timestamptz[]": sa.DateTime(timezone=True),
    }[array_type]
    return postgresql.ARRAY(base)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is stored in UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
