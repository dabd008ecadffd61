"""The SQL of the triage pipeline: batch look-ups by many keys at once, bulk writes.

Every function takes the caller's session, inside the caller's transaction; none commits.
Look-ups cost one round trip per batch whatever its size (arrays on PostgreSQL).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_icac.adapters import store
from cpu_icac.adapters.tables import (
    OPEN_STATUSES,
    Cluster,
    HashMatchRow,
    IpSighting,
    LinkKey,
    Quarantine,
    Tip,
    TipVersion,
)
from cpu_shared.messaging.tables import OutboxMessage

TIPS: sa.Table = Tip.__table__  # type: ignore[attr-defined]
VERSIONS: sa.Table = TipVersion.__table__  # type: ignore[attr-defined]
LINK_KEYS: sa.Table = LinkKey.__table__  # type: ignore[attr-defined]
SIGHTINGS: sa.Table = IpSighting.__table__  # type: ignore[attr-defined]
CLUSTERS: sa.Table = Cluster.__table__  # type: ignore[attr-defined]
MATCHES: sa.Table = HashMatchRow.__table__  # type: ignore[attr-defined]
QUARANTINE: sa.Table = Quarantine.__table__  # type: ignore[attr-defined]
OUTBOX: sa.Table = OutboxMessage.__table__  # type: ignore[attr-defined]

TIP_COLUMNS: tuple[str, ...] = tuple(c.name for c in TIPS.columns)
VERSION_COLUMNS = (
    "id",
    "tip_id",
    "version",
    "fingerprint",
    "received_at",
    "source",
    "provenance",
    "received_by",
    "report",
)
MATCH_COLUMNS = ("tip_id", "file_index", "hash_set", "algorithm", "distance", "category")
OUTBOX_COLUMNS = ("event_id", "topic", "message_key", "payload", "created_at")
QUARANTINE_COLUMNS = tuple(c.name for c in QUARANTINE.columns)

_EXISTING = (
    TIPS.c.id,
    TIPS.c.provider,
    TIPS.c.report_id,
    TIPS.c.version,
    TIPS.c.status,
    TIPS.c.cluster_id,
    TIPS.c.event_version,
)


async def existing_tips(
    session: AsyncSession, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], sa.Row[Any]]:
    """The stored tips of these ``(provider, report_id)`` keys."""
    if not keys:
        return {}
    rows: list[sa.Row[Any]] = []
    if store.is_postgres(session):
        q = (
            sa.func.unnest(
                sa.cast(sa.bindparam("p", [k[0] for k in keys]), _array(sa.String())),
                sa.cast(sa.bindparam("r", [k[1] for k in keys]), _array(sa.String())),
            )
            .table_valued("p", "r")
            .render_derived(name="q")
        )
        query = sa.select(*_EXISTING).select_from(
            TIPS.join(q, sa.and_(TIPS.c.provider == q.c.p, TIPS.c.report_id == q.c.r))
        )
        rows = list((await session.execute(query)).all())
    else:
        for part in store.chunks(list(keys)):
            query = sa.select(*_EXISTING).where(
                sa.tuple_(TIPS.c.provider, TIPS.c.report_id).in_(list(part))
            )
            rows.extend((await session.execute(query)).all())
    return {(row.provider, row.report_id): row for row in rows}


def _array(item: Any) -> Any:
    from sqlalchemy.dialects import postgresql

    return postgresql.ARRAY(item)


async def version_fingerprints(
    session: AsyncSession, tip_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, set[str]]:
    found: dict[uuid.UUID, set[str]] = {}
    query = sa.select(VERSIONS.c.tip_id, VERSIONS.c.fingerprint)
    for row in await store.rows_where_in(session, query, VERSIONS.c.tip_id, tip_ids, "uuid[]"):
        found.setdefault(row.tip_id, set()).add(row.fingerprint)
    return found


async def clusters_of_keys(
    session: AsyncSession, keys: Sequence[str]
) -> list[tuple[str, str, uuid.UUID]]:
    """``(key, kind, cluster id)`` of the identifier keys already known."""
    query = sa.select(LINK_KEYS.c.key, LINK_KEYS.c.kind, TIPS.c.cluster_id).select_from(
        LINK_KEYS.join(TIPS, TIPS.c.id == LINK_KEYS.c.tip_id)
    )
    rows = await store.rows_where_in(session, query, LINK_KEYS.c.key, keys, "varchar[]")
    return [(row.key, row.kind, row.cluster_id) for row in rows]


async def sightings_near(
    session: AsyncSession, wanted: Sequence[tuple[str, datetime, datetime]]
) -> list[tuple[str, datetime, uuid.UUID]]:
    """Stored sightings of each ``(ip key, from, to)``: ``(ip key, at, cluster id)``."""
    if not wanted:
        return []
    if store.is_postgres(session):
        q = (
            sa.func.unnest(
                sa.cast(sa.bindparam("k", [w[0] for w in wanted]), _array(sa.String())),
                sa.cast(
                    sa.bindparam("lo", [w[1] for w in wanted]),
                    _array(sa.DateTime(timezone=True)),
                ),
                sa.cast(
                    sa.bindparam("hi", [w[2] for w in wanted]),
                    _array(sa.DateTime(timezone=True)),
                ),
            )
            .table_valued("k", "lo", "hi")
            .render_derived(name="q")
        )
        query = (
            sa.select(SIGHTINGS.c.ip_key, SIGHTINGS.c.at, TIPS.c.cluster_id)
            .distinct()
            .select_from(
                q.join(
                    SIGHTINGS,
                    sa.and_(
                        SIGHTINGS.c.ip_key == q.c.k,
                        SIGHTINGS.c.at >= q.c.lo,
                        SIGHTINGS.c.at <= q.c.hi,
                    ),
                ).join(TIPS, TIPS.c.id == SIGHTINGS.c.tip_id)
            )
        )
        return [(r.ip_key, r.at, r.cluster_id) for r in await session.execute(query)]
    out: set[tuple[str, datetime, uuid.UUID]] = set()
    for key, lo, hi in wanted:
        query = (
            sa.select(SIGHTINGS.c.ip_key, SIGHTINGS.c.at, TIPS.c.cluster_id)
            .select_from(SIGHTINGS.join(TIPS, TIPS.c.id == SIGHTINGS.c.tip_id))
            .where(SIGHTINGS.c.ip_key == key, SIGHTINGS.c.at >= lo, SIGHTINGS.c.at <= hi)
        )
        out.update(
            (r.ip_key, store.aware(r.at), r.cluster_id) for r in await session.execute(query)
        )  # type: ignore[misc]
    return sorted(out)


async def cluster_rows(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, str]]:
    query = sa.select(CLUSTERS.c.id, CLUSTERS.c.size, CLUSTERS.c.linked_by)
    rows = await store.rows_where_in(session, query, CLUSTERS.c.id, ids, "uuid[]")
    return {row.id: (row.size, row.linked_by) for row in rows}


async def open_members(
    session: AsyncSession, cluster_ids: Sequence[uuid.UUID], exclude: set[uuid.UUID]
) -> list[sa.Row[Any]]:
    """Open tips of these clusters (to re-assess when the cluster crosses a size band)."""
    query = sa.select(
        TIPS.c.id,
        TIPS.c.cluster_id,
        TIPS.c.reasons,
        TIPS.c.priority,
        TIPS.c.event_version,
        TIPS.c.in_jurisdiction,
        TIPS.c.province_code,
        TIPS.c.hash_match_count,
    ).where(TIPS.c.status.in_(OPEN_STATUSES))
    rows = await store.rows_where_in(session, query, TIPS.c.cluster_id, cluster_ids, "uuid[]")
    return [row for row in rows if row.id not in exclude]


async def update_rows(
    session: AsyncSession, table: sa.Table, key: str, rows: Sequence[dict[str, Any]]
) -> None:
    """``UPDATE table SET ... WHERE key = :key`` for many rows with the same columns."""
    if not rows:
        return
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_columns.setdefault(tuple(sorted(row)), []).append(row)
    for columns, group in by_columns.items():
        stmt = (
            sa.update(table)
            .where(table.c[key] == sa.bindparam(f"b_{key}"))
            .values({c: sa.bindparam(f"b_{c}") for c in columns if c != key})
        )
        await session.execute(stmt, [{f"b_{k}": v for k, v in row.items()} for row in group])


async def merge_clusters(
    session: AsyncSession, merges: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """Move every tip of each ``(loser, winner)`` cluster into the winner, drop the losers."""
    if not merges:
        return
    await session.execute(
        sa.update(TIPS)
        .where(TIPS.c.cluster_id == sa.bindparam("b_loser"))
        .values(cluster_id=sa.bindparam("b_winner")),
        [{"b_loser": loser, "b_winner": winner} for loser, winner in merges],
    )
    losers = [loser for loser, _ in merges]
    for part in store.chunks(losers):
        await session.execute(sa.delete(CLUSTERS).where(CLUSTERS.c.id.in_(list(part))))


async def delete_matches(session: AsyncSession, tip_ids: Iterable[uuid.UUID]) -> None:
    ids = list(tip_ids)
    for part in store.chunks(ids):
        await session.execute(sa.delete(MATCHES).where(MATCHES.c.tip_id.in_(list(part))))
