"""Master-key rotation over a whole service store, without downtime.

Ciphertexts name their master key (``enc1.<key id>.…``), so the columns to re-wrap are found
by reflection: every text column holding such tokens. Rotation is then: add the new key to
``CPU_CRYPTO_MASTER_KEYS`` and make it ``CPU_CRYPTO_ACTIVE_MASTER_KEY``, restart the services
one by one (new writes use the new key; old values stay readable), run ``cpu keys rotate``
(re-wraps data keys in short batches while the services keep serving), check ``cpu keys
status``, and only then retire the old key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cpu_shared.security.crypto import FORMAT, FieldCipher, rewrap_column


@dataclass(frozen=True)
class EncryptedColumn:
    table: str
    column: str


async def find_encrypted_columns(engine: AsyncEngine) -> list[EncryptedColumn]:
    """Text columns of single-key tables that hold at least one ciphertext."""

    def reflect(sync_conn: sa.Connection) -> sa.MetaData:
        metadata = sa.MetaData()
        metadata.reflect(sync_conn)
        return metadata

    async with engine.connect() as conn:
        metadata = await conn.run_sync(reflect)
        found = []
        for table in metadata.sorted_tables:
            if len(table.primary_key.columns) != 1 or table.name == "alembic_version":
                continue
            for column in table.columns:
                if not isinstance(column.type, sa.String | sa.Text):
                    continue
                probe = (
                    sa.select(sa.literal(1))
                    .where(column.startswith(f"{FORMAT}.", autoescape=True))
                    .limit(1)
                )
                if (await conn.execute(probe)).first() is not None:
                    found.append(EncryptedColumn(table.name, column.name))
        return found


async def key_usage(engine: AsyncEngine) -> dict[EncryptedColumn, Counter[str]]:
    """How many values of each encrypted column are under each master key."""
    usage: dict[EncryptedColumn, Counter[str]] = {}
    columns = await find_encrypted_columns(engine)
    async with engine.connect() as conn:
        for enc in columns:
            col: sa.ColumnClause[str] = sa.column(enc.column)
            query = sa.select(col).select_from(sa.table(enc.table)).where(col.is_not(None))
            counts: Counter[str] = Counter()
            result = await conn.stream(query)
            async for (token,) in result:
                parts = str(token).split(".", 2)
                counts[parts[1] if len(parts) > 2 and parts[0] == FORMAT else "(plaintext!)"] += 1
            usage[enc] = counts
    return usage


async def rotate_store(
    engine: AsyncEngine, cipher: FieldCipher, *, batch_size: int = 500
) -> dict[EncryptedColumn, int]:
    """Re-wrap every value not under the active master key. Returns the count per column."""

    def reflect(sync_conn: sa.Connection) -> sa.MetaData:
        metadata = sa.MetaData()
        metadata.reflect(sync_conn)
        return metadata

    columns = await find_encrypted_columns(engine)
    async with engine.connect() as conn:
        metadata = await conn.run_sync(reflect)
    done = {}
    for enc in columns:
        done[enc] = await rewrap_column(
            engine, metadata.tables[enc.table], enc.column, cipher=cipher, batch_size=batch_size
        )
    return done
