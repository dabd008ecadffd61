"""The custody ledger in the store: appends under one lock, entries, signed heads, proofs.

Appending
---------
Every custody write of the service starts by locking the single ``custody_ledger_state`` row
(:func:`lock_ledger`): ``UPDATE ... RETURNING`` as the transaction's *first* statement. On
PostgreSQL that takes the row lock until commit; on SQLite it takes the database's write lock
(a later first write in a WAL transaction that has already read can fail with a stale
snapshot, hence "first"). Writers therefore run one at a time, and each one reads the ledger's
size *after* the previous one committed: indexes are dense and gap-free by construction,
whatever the number of processes, and the item a writer checks cannot change under it.

:meth:`LedgerAppender.append` then, in the caller's transaction: computes the leaf (RFC 8785),
stores it encrypted with its leaf hash, advances the compact tree, signs the new head and
stores it. The custody record, the item's new state, the outbox events and the audit row commit
with it or not at all, so there is never a custody change without its leaf and head, nor a
leaf without the change.

Serving
-------
Proofs need the leaf hashes, not the leaves. :class:`LeafHashCache` keeps a
:class:`~cpu_forensics.domain.ledger.MerkleTree` in memory and extends it with the hashes
appended since (read by index, checked dense), so a proof costs O(log n) rather than a read
of the whole log. It trusts the stored hashes: a wrong proof cannot fool anyone, because a
verifier checks it against a signed head.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_forensics.adapters.records import Protection, utc
from cpu_forensics.adapters.signing import LedgerSigner, SignedHead
from cpu_forensics.adapters.tables import LedgerLeafRow, LedgerStateRow, TreeHeadRow
from cpu_forensics.domain.custody import CustodyEvent
from cpu_forensics.domain.ledger import HASH_SIZE, CompactTree, MerkleTree, leaf_bytes, leaf_hash

LEAF = LedgerLeafRow.__table__  # type: ignore[attr-defined]
HEAD = TreeHeadRow.__table__  # type: ignore[attr-defined]
STATE = LedgerStateRow.__table__  # type: ignore[attr-defined]

MAX_ENTRIES_PER_CALL = 1000  # CONTRACT.md section 7


class LedgerCorrupt(RuntimeError):
    """The stored ledger state cannot be appended to (run ``cpu ledger verify``)."""


def _split_nodes(blob: bytes, size: int) -> list[bytes]:
    if len(blob) != HASH_SIZE * size.bit_count():
        raise LedgerCorrupt(f"ledger state of size {size} has {len(blob)} bytes of nodes")
    return [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]


@dataclass
class LedgerState:
    """The tree as the lock found it; appends in the same transaction advance it."""

    tree: CompactTree
    heads: list[SignedHead] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.tree.size


async def lock_ledger(session: AsyncSession, *, now: datetime) -> LedgerState:
    """Take the custody write lock (the first statement of the transaction) and the state."""
    result = await session.execute(
        sa.update(STATE)
        .where(STATE.c.id == 1)
        .values(updated_at=now)
        .returning(STATE.c.tree_size, STATE.c.nodes)
    )
    row = result.first()
    if row is None:
        raise LedgerCorrupt("the ledger state row is missing")
    size = int(row.tree_size)
    return LedgerState(CompactTree(size, _split_nodes(bytes(row.nodes), size)))


@dataclass(frozen=True)
class Appended:
    ledger_index: int
    leaf_hash: bytes
    head: SignedHead


class LedgerAppender:
    def __init__(self, protection: Protection, signer: LedgerSigner) -> None:
        self.p = protection
        self.signer = signer

    async def append(
        self, session: AsyncSession, state: LedgerState, event: CustodyEvent, *, now: datetime
    ) -> Appended:
        """Append ``event``'s leaf and a new signed head, in the caller's transaction."""
        leaf = leaf_bytes(event)
        hashed = leaf_hash(leaf)
        index = state.tree.append_hash(hashed)
        size = index + 1
        root = state.tree.root()
        head = SignedHead(size, root, now, self.signer.checkpoint(size, root))
        await session.execute(
            sa.insert(LEAF).values(
                ledger_index=index,
                event_id=event.event_id,
                item_id=event.item_id,
                leaf_enc=self.p.seal_leaf(index, leaf),
                leaf_hash=hashed,
                appended_at=now,
            )
        )
        await session.execute(
            sa.insert(HEAD).values(
                tree_size=size, root_hash=root, timestamp=now, checkpoint=head.checkpoint
            )
        )
        await session.execute(
            sa.update(STATE)
            .where(STATE.c.id == 1)
            .values(tree_size=size, nodes=b"".join(state.tree.nodes), updated_at=now)
        )
        state.heads.append(head)
        return Appended(index, hashed, head)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    ledger_index: int
    event_id: str
    item_id: str
    leaf: bytes


async def ledger_size(session: AsyncSession) -> int:
    result = await session.execute(sa.select(STATE.c.tree_size).where(STATE.c.id == 1))
    return int(result.scalar_one())


async def read_entries(
    session: AsyncSession, protection: Protection, start: int, end: int
) -> list[LedgerEntry]:
    """Entries ``start`` to ``end`` (exclusive), leaves decrypted."""
    result = await session.execute(
        sa.select(LEAF.c.ledger_index, LEAF.c.event_id, LEAF.c.item_id, LEAF.c.leaf_enc)
        .where(LEAF.c.ledger_index >= start, LEAF.c.ledger_index < end)
        .order_by(LEAF.c.ledger_index)
    )
    return [
        LedgerEntry(
            int(r.ledger_index),
            r.event_id,
            r.item_id,
            protection.open_leaf(r.ledger_index, r.leaf_enc),
        )
        for r in result.all()
    ]


async def latest_head(session: AsyncSession) -> SignedHead | None:
    row = (
        await session.execute(sa.select(HEAD).order_by(HEAD.c.tree_size.desc()).limit(1))
    ).first()
    if row is None:
        return None
    return SignedHead(int(row.tree_size), bytes(row.root_hash), utc(row.timestamp), row.checkpoint)


async def head_at(session: AsyncSession, tree_size: int) -> SignedHead | None:
    row = (await session.execute(sa.select(HEAD).where(HEAD.c.tree_size == tree_size))).first()
    if row is None:
        return None
    return SignedHead(int(row.tree_size), bytes(row.root_hash), utc(row.timestamp), row.checkpoint)


async def leaf_indexes_of_item(session: AsyncSession, item_id: str) -> list[tuple[int, str]]:
    result = await session.execute(
        sa.select(LEAF.c.ledger_index, LEAF.c.event_id)
        .where(LEAF.c.item_id == item_id)
        .order_by(LEAF.c.ledger_index)
    )
    return [(int(i), e) for i, e in result.all()]


class LeafHashCache:
    """An in-memory Merkle tree over the stored leaf hashes, following the log."""

    def __init__(self, batch: int = 50_000) -> None:
        self._tree = MerkleTree([])
        self._lock = asyncio.Lock()
        self._batch = batch

    async def tree(self, session: AsyncSession, size: int) -> MerkleTree:
        """The tree over (at least) the first ``size`` leaves."""
        async with self._lock:
            if size < self._tree.size:
                return self._tree
            while self._tree.size < size:
                start = self._tree.size
                result = await session.execute(
                    sa.select(LEAF.c.ledger_index, LEAF.c.leaf_hash)
                    .where(LEAF.c.ledger_index >= start, LEAF.c.ledger_index < size)
                    .order_by(LEAF.c.ledger_index)
                    .limit(self._batch)
                )
                rows = result.all()
                hashes = []
                for offset, (index, hashed) in enumerate(rows):
                    if int(index) != start + offset:
                        raise LedgerCorrupt(f"ledger entry {start + offset} is missing")
                    hashes.append(bytes(hashed))
                if not hashes:
                    raise LedgerCorrupt(f"ledger entry {start} is missing")
                self._tree.extend(hashes)
            return self._tree

    def reset(self) -> None:
        self._tree = MerkleTree([])
