"""Ignore events older than the aggregate version a handler already holds.

Kafka keeps order within a partition, but a redrive, a replay or a producer retry can still
hand a handler an event it has already overtaken. Handlers whose effect depends on order call
:func:`claim_version` in their transaction and skip the event when it returns False.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_shared.messaging.tables import AggregateVersion


async def claim_version(
    session: AsyncSession, *, stream: str, aggregate_id: str, version: int
) -> bool:
    """Record ``version`` as applied; False when this or a newer version already was."""
    table = AggregateVersion.__table__  # type: ignore[attr-defined]
    dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(stream=stream, aggregate_id=aggregate_id, version=version)
    stmt = stmt.on_conflict_do_update(
        index_elements=["stream", "aggregate_id"],
        set_={"version": stmt.excluded.version},
        where=table.c.version < stmt.excluded.version,
    )
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]
