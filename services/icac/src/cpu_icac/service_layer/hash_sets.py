"""Known-hash lists: stored whole in the service's database, indexed in memory per process.

Every process (HTTP and consumers, however many) keeps one :class:`HashIndex`. Before each
batch of tips it compares the store's list revision with the one it loaded and reloads when a
list was added or replaced, so a tip received after an upload committed is matched against it,
whichever process takes the tip. Loading builds the index off the event loop, then freezes the
long-lived index out of the garbage collector's scans.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_icac.adapters import store
from cpu_icac.adapters.ids import uuid7
from cpu_icac.adapters.tables import HashSetEntry, HashSetRow
from cpu_icac.domain.hash_sets import HashIndex, HashSet, HashSetFormat, KnownHash, load_hash_set
from cpu_shared.logging import get_logger

log = get_logger(__name__)

_SETS = HashSetRow.__table__  # type: ignore[attr-defined]
_ENTRIES = HashSetEntry.__table__  # type: ignore[attr-defined]


class HashSetCache:
    """This process's index of every stored list, reloaded when the store's revision moves."""

    def __init__(self, entries_gauge: Gauge | None = None) -> None:
        self.index = HashIndex()
        self.generation: tuple[int, int] | None = None
        self._lock = asyncio.Lock()
        self._gauge = entries_gauge

    async def current(self, session: AsyncSession) -> HashIndex:
        row = (
            await session.execute(sa.select(sa.func.max(_SETS.c.revision), sa.func.count()))
        ).one()
        generation = (int(row[0] or 0), int(row[1]))
        if generation == self.generation:
            return self.index
        async with self._lock:
            if generation != self.generation:
                started = time.perf_counter()
                sets = await load_sets(session)
                self.index = await asyncio.to_thread(_build, sets)
                self.generation = generation
                # The index lives as long as the process: keep the collector off it.
                gc.collect()
                gc.freeze()
                if self._gauge is not None:
                    self._gauge.set(len(self.index))
                log.info(
                    "hash sets loaded",
                    sets=len(sets),
                    entries=len(self.index),
                    revision=generation[0],
                    seconds=round(time.perf_counter() - started, 2),
                )
        return self.index


def _build(sets: list[HashSet]) -> HashIndex:
    index = HashIndex.of(sets)
    if sets:
        index.pdq_search("0" * 64)  # builds the PDQ tables now, not on the first tip
    return index


async def load_sets(session: AsyncSession) -> list[HashSet]:
    """Every stored list, entries in upload order."""
    names = {
        row.id: row.name
        for row in (
            await session.execute(sa.select(_SETS.c.id, _SETS.c.name).order_by(_SETS.c.revision))
        )
    }
    entries: dict[Any, list[KnownHash]] = {set_id: [] for set_id in names}
    result = await session.stream(
        sa.select(
            _ENTRIES.c.hash_set_id,
            _ENTRIES.c.md5,
            _ENTRIES.c.sha1,
            _ENTRIES.c.pdq,
            _ENTRIES.c.category,
        ).order_by(_ENTRIES.c.id)
    )
    async for set_id, md5, sha1, pdq, category in result:
        bucket = entries.get(set_id)
        if bucket is not None:
            bucket.append(KnownHash(md5, sha1, pdq, category))
    return [HashSet(names[set_id], tuple(found)) for set_id, found in entries.items()]


@dataclass(frozen=True)
class StoredHashSet:
    id: uuid.UUID
    name: str
    format: str
    entries: int
    skipped: int
    problems: list[str]
    revision: int
    replaced: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "format": self.format,
            "entries": self.entries,
            "skipped": self.skipped,
            "problems": self.problems,
            "revision": self.revision,
            "replaced": self.replaced,
        }


def parse_hash_set(data: bytes, *, name: str, format: HashSetFormat | None = None) -> HashSet:
    """The domain's loader (raises ``HashSetError`` for a file it cannot read at all)."""
    return load_hash_set(data, name=name, format=format)


async def store_hash_set(
    session: AsyncSession, hash_set: HashSet, *, data: bytes, user: str, now: Any
) -> StoredHashSet:
    """Store a list (replacing one of the same name) in the caller's transaction and bump the
    revision every process watches."""
    await store.lock(session, store.HASH_SET_LOCK)
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    fmt = "project_vic_json" if head in (b"{", b"[") else "csv"
    revision = (
        int(
            (
                await session.execute(sa.select(sa.func.coalesce(sa.func.max(_SETS.c.revision), 0)))
            ).scalar_one()
        )
        + 1
    )
    old = (
        await session.execute(sa.select(_SETS.c.id).where(_SETS.c.name == hash_set.name))
    ).scalar_one_or_none()
    if old is not None:
        await session.execute(sa.delete(_ENTRIES).where(_ENTRIES.c.hash_set_id == old))
        await session.execute(sa.delete(_SETS).where(_SETS.c.id == old))
    set_id = uuid7()
    await session.execute(
        sa.insert(_SETS).values(
            id=set_id,
            name=hash_set.name,
            format=fmt,
            entry_count=len(hash_set.entries),
            skipped=hash_set.skipped,
            problems=json.dumps(list(hash_set.problems)),
            file_sha256=hashlib.sha256(data).hexdigest(),
            uploaded_by=user,
            uploaded_at=now,
            revision=revision,
        )
    )
    await store.copy_rows(
        session,
        _ENTRIES,
        ["hash_set_id", "md5", "sha1", "pdq", "category"],
        [(set_id, e.md5, e.sha1, e.pdq, e.category) for e in hash_set.entries],
    )
    return StoredHashSet(
        id=set_id,
        name=hash_set.name,
        format=fmt,
        entries=len(hash_set.entries),
        skipped=hash_set.skipped,
        problems=list(hash_set.problems),
        revision=revision,
        replaced=old is not None,
    )


async def list_hash_sets(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(sa.select(_SETS).order_by(_SETS.c.revision))
    return [
        {
            "id": str(r.id),
            "name": r.name,
            "format": r.format,
            "entries": r.entry_count,
            "skipped": r.skipped,
            "revision": r.revision,
            "uploaded_by": r.uploaded_by,
            "uploaded_at": store.aware(r.uploaded_at),
            "file_sha256": r.file_sha256,
        }
        for r in rows
    ]
