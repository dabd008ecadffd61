"""Verifying the whole custody ledger from the store: ``cpu ledger verify`` and
``GET /api/v1/ledger/verify`` (CONTRACT.md section 7). One function, :func:`verify_store`.

What it does, entry by entry in ledger order (streamed in batches, so a million entries need
memory for their hashes, not their records):

1. rebuilds the custody event each *record* says happened (decrypting its fields; an item's
   registration takes what the item is from the item's row) and recomputes its leaf;
2. compares it with the leaf *stored* when the entry was appended (decrypted, and hashed
   against the stored leaf hash). Equal documents are the same leaf (the stored bytes were
   canonical when appended), so the stored bytes are hashed; otherwise the record's own
   RFC 8785 bytes are, and the entry is reported;
3. follows each item's chain (sequence 0 is the registration, every step starts where the last
   ended, nothing after disposal) and, at the end, checks each item's row (its custodian and
   last step) against the chain;
4. builds the RFC 9162 tree from the leaves and checks every stored signed tree head, and any
   checkpoint held by others (``extra_checkpoints``), against it: signature, origin, and root
   at its size (:func:`cpu_forensics.domain.ledger.verify_tree`), plus the head row's own
   columns against its checkpoint and the ledger's state row against the tree;
5. names the first bad entry by ledger index and event id.

Where the ledger entry of an index has no readable record (deleted, or no longer decrypting),
no leaf can be recomputed for it: the tree is built without it, exactly as the contract says,
and every later signed head then fails too, which corroborates the exact finding.

It runs on its own event loop in the calling thread (the HTTP route calls it in a worker
thread), reading through one connection. On PostgreSQL that is a REPEATABLE READ, READ ONLY
transaction (one snapshot). Elsewhere, the bound of the log is fixed first (the largest index,
head or state seen) and nothing past it is read, so appends committed during a run are ignored
rather than mistaken for gaps: appends commit leaf, record, head and state together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cpu_forensics.adapters import records
from cpu_forensics.adapters.ledger_store import HEAD, LEAF, STATE
from cpu_forensics.adapters.public import b64
from cpu_forensics.adapters.records import Protection
from cpu_forensics.adapters.repository import EVENT, ITEM
from cpu_forensics.domain.custody import DISPOSAL_KINDS, CustodyKind
from cpu_forensics.domain.evidence import EvidenceStatus
from cpu_forensics.domain.ledger import (
    HASH_SIZE,
    CompactTree,
    LedgerProblem,
    LedgerReport,
    MerkleTree,
    leaf_bytes,
    leaf_hash,
    leaf_matches_event,
    verify_tree,
)
from cpu_forensics.domain.rules import CustodyRule
from cpu_shared.db import create_engine, is_sqlite
from cpu_shared.security.crypto import CryptoError, FieldCipher

Signatures = Literal["all", "newest"]
ITEM_IDENTITY = (
    ITEM.c.id,
    ITEM.c.type,
    ITEM.c.description_enc,
    ITEM.c.collected_by_enc,
    ITEM.c.collected_at,
    ITEM.c.collected_location_enc,
    ITEM.c.parent_id,
    ITEM.c.sha256,
    ITEM.c.md5,
    ITEM.c.sha1,
    ITEM.c.acquisition_tool,
)


@dataclass(frozen=True)
class StoreVerification:
    """The outcome: the domain's report plus what only the store can say."""

    ok: bool
    tree_size: int  # entries in the log (the bound of this run)
    root_hash: bytes  # the root of the tree recomputed from the records
    tree_heads_checked: int
    tree_heads_verified: int
    first_bad_index: int | None
    first_bad_event_id: str | None
    first_bad_exact: bool
    problems: tuple[LedgerProblem, ...]
    head_sizes: tuple[int | None, ...] = field(repr=False, default=())
    signatures: Signatures = "all"

    def head_size(self, problem: LedgerProblem) -> int | None:
        """The tree size of the head a problem is about (None for a head that did not parse)."""
        if problem.tree_head is None or problem.tree_head >= len(self.head_sizes):
            return None
        return self.head_sizes[problem.tree_head]

    def summary(self) -> str:
        if self.ok:
            heads = (
                f"{self.tree_heads_verified} signed tree heads verified"
                if self.signatures == "all"
                else f"{self.tree_heads_checked} tree heads checked against the tree, "
                f"{self.tree_heads_verified} signature(s) verified (the newest)"
            )
            return f"ledger intact: {self.tree_size} entries, {heads}, root {b64(self.root_hash)}"
        if self.first_bad_index is None:
            where = "no ledger entry named (see the problems)"
        else:
            where = "first bad entry " + ("" if self.first_bad_exact else "at or after ")
            where += f"index {self.first_bad_index}"
            if self.first_bad_event_id is not None:
                where += f", event {self.first_bad_event_id}"
        return f"ledger FAILED: {where}; {len(self.problems)} problem(s)"


def verify_store(
    database_url: str,
    cipher: FieldCipher,
    verifier_key: str,
    *,
    origin: str | None,
    extra_checkpoints: Sequence[str] = (),
    signatures: Signatures = "all",
    batch: int = 2000,
    progress: Callable[[str], None] | None = None,
) -> StoreVerification:
    """Verify the ledger in the store at ``database_url`` (see the module docstring).

    ``signatures``: ``"all"`` verifies the Ed25519 signature of every stored head (what
    CONTRACT.md section 7 asks; about a third of a millisecond a head on a loaded two-core
    machine, so minutes for a million). ``"newest"`` checks every head's root against the
    recomputed tree but verifies the signature of the newest head only, and of any head that
    disagrees with the tree: as strong against a rewritten or truncated log (the newest head
    commits to every entry, and a matching older head says nothing the newest does not), but
    blind to a corrupted signature on an older head that is otherwise true.

    Blocking: call it from a thread (or a command), never on a running event loop.
    """
    loop = asyncio.new_event_loop()
    try:
        return _Run(loop, database_url, Protection(cipher), batch, progress, signatures).verify(
            verifier_key, origin, extra_checkpoints
        )
    finally:
        loop.close()


@dataclass
class _Last:
    index: int
    sequence: int
    to_user: str
    kind: CustodyKind
    event_id: str


class _Run:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        url: str,
        protection: Protection,
        batch: int,
        progress: Callable[[str], None] | None,
        signatures: Signatures = "all",
    ) -> None:
        self.loop = loop
        self.signatures = signatures
        self.head_problems: list[LedgerProblem] = []
        self.heads_checked = 0
        self.url = url
        self.p = protection
        self.batch = batch
        self.progress = progress or (lambda _message: None)
        self.problems: list[LedgerProblem] = []
        self.hashes: list[bytes] = []
        # The ledger's own name for each entry (from its leaf row), else its record's.
        self.names: dict[int, str] = {}
        self.last: dict[str, _Last] = {}

    def _await(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def verify(
        self, verifier_key: str, origin: str | None, extra: Sequence[str]
    ) -> StoreVerification:
        engine = create_engine(self.url, pool_size=1)
        try:
            conn: AsyncConnection = self._await(engine.connect())
            try:
                if not is_sqlite(self.url):
                    conn = self._await(conn.execution_options(isolation_level="REPEATABLE READ"))
                    self._await(conn.begin())
                    self._await(conn.execute(sa.text("SET TRANSACTION READ ONLY")))
                else:
                    self._await(conn.begin())
                return self._verify(conn, verifier_key, origin, extra)
            finally:
                self._await(conn.close())
        finally:
            self._await(engine.dispose())

    # --- the passes -------------------------------------------------------------------------

    def _scalar(self, conn: AsyncConnection, stmt: Any) -> Any:
        return self._await(conn.execute(stmt)).scalar()

    def _verify(
        self, conn: AsyncConnection, verifier_key: str, origin: str | None, extra: Sequence[str]
    ) -> StoreVerification:
        state = (
            self._await(conn.execute(sa.select(STATE).where(STATE.c.id == 1))).mappings().first()
        )
        state_size = int(state["tree_size"]) if state is not None else 0
        bound = max(
            state_size,
            int(self._scalar(conn, sa.select(sa.func.max(LEAF.c.ledger_index))) or -1) + 1,
            int(self._scalar(conn, sa.select(sa.func.max(EVENT.c.ledger_index))) or -1) + 1,
            int(self._scalar(conn, sa.select(sa.func.max(HEAD.c.tree_size))) or 0),
        )
        self.progress(f"checking {bound} ledger entries")
        for lo in range(0, bound, self.batch):
            self._entries(conn, lo, min(lo + self.batch, bound))
        self._items(conn, bound)
        tree = MerkleTree(self.hashes, checked=False)
        self._state(state, state_size, bound, tree)

        head_sizes: list[int | None] = []
        self.progress("checking the signed tree heads")
        report = verify_tree(
            self.hashes,
            self._heads(conn, bound, head_sizes, extra, tree, origin),
            verifier_key,
            origin=origin,
            entry_problems=self.problems,
            event_id_at=self.names.get,
            tree=tree,
        )
        return self._conclude(report, head_sizes, bound)

    def _entries(self, conn: AsyncConnection, lo: int, hi: int) -> None:
        in_range = (lo, hi)
        events = {
            int(r["ledger_index"]): r
            for r in self._await(
                conn.execute(
                    sa.select(EVENT).where(
                        EVENT.c.ledger_index >= in_range[0], EVENT.c.ledger_index < in_range[1]
                    )
                )
            ).mappings()
        }
        leaves = {
            int(r.ledger_index): r
            for r in self._await(
                conn.execute(
                    sa.select(LEAF).where(
                        LEAF.c.ledger_index >= in_range[0], LEAF.c.ledger_index < in_range[1]
                    )
                )
            )
        }
        registered_items = {
            r["item_id"] for r in events.values() if r["kind"] == CustodyKind.REGISTERED.value
        }
        items = {}
        if registered_items:
            items = {
                r["id"]: r
                for r in self._await(
                    conn.execute(
                        sa.select(*ITEM_IDENTITY).where(ITEM.c.id.in_(sorted(registered_items)))
                    )
                ).mappings()
            }
        for index in range(lo, hi):
            self._entry(index, events.get(index), leaves.get(index), items)

    def _problem(
        self, code: str, message: str, index: int | None = None, event_id: str | None = None
    ) -> None:
        self.problems.append(
            LedgerProblem(
                code,
                message,
                index,
                None if index is None else index + 1,
                event_id=event_id,
            )
        )

    def _entry(self, index: int, record: Any, stored: Any, items: dict[str, Any]) -> None:
        if stored is not None:
            self.names[index] = stored.event_id
        if record is None and stored is None:
            self._problem("entry_missing", f"entry {index}: no custody record and no leaf", index)
            return
        if record is None:
            self._problem(
                "record_missing",
                f"entry {index} (event {stored.event_id}): the ledger holds its leaf but its "
                "custody record is gone",
                index,
                stored.event_id,
            )
            return
        record_id = record["id"]
        self.names.setdefault(index, record_id)
        name = self.names[index]

        event = None
        try:
            evidence = None
            if record["kind"] == CustodyKind.REGISTERED.value:
                item = items.get(record["item_id"])
                if item is None:
                    raise ValueError("the item of this registration is missing")
                evidence = records.registered_evidence(item, self.p)
            event = records.event_from_row(record, self.p, evidence)
        except (CryptoError, ValueError, KeyError) as exc:
            self._problem(
                "record_unreadable",
                f"the custody record of entry {index} (event {record_id}) cannot be rebuilt: "
                f"{type(exc).__name__}: {exc}",
                index,
                name,
            )

        stored_leaf: bytes | None = None
        if stored is None:
            self._problem(
                "leaf_missing",
                f"entry {index} (event {record_id}): the custody record names this ledger "
                "index but the ledger holds no leaf there",
                index,
                name,
            )
        else:
            if stored.event_id != record_id:
                self._problem(
                    "entry_mismatch",
                    f"entry {index}: the ledger holds event {stored.event_id} there, but the "
                    f"custody record with that index is event {record_id}",
                    index,
                    name,
                )
            try:
                stored_leaf = self.p.open_leaf(index, stored.leaf_enc)
            except (CryptoError, UnicodeError) as exc:
                self._problem(
                    "leaf_unreadable",
                    f"the stored leaf of entry {index} does not decrypt: {exc}",
                    index,
                    name,
                )
            if stored_leaf is not None and leaf_hash(stored_leaf) != bytes(stored.leaf_hash):
                self._problem(
                    "leaf_changed",
                    f"the stored leaf of entry {index} no longer hashes to the leaf hash "
                    "stored when it was appended",
                    index,
                    name,
                )
        if event is None:
            return  # no leaf can be recomputed from this record

        if stored_leaf is not None and leaf_matches_event(stored_leaf, event):
            leaf = stored_leaf
        else:
            leaf = leaf_bytes(event)
            if stored_leaf is not None:
                self._problem(
                    "record_changed",
                    f"the custody record of entry {index} (event {record_id}) no longer says "
                    "what its ledger leaf says",
                    index,
                    name,
                )
        self.hashes.append(leaf_hash(leaf))
        self._chain(index, event.item_id, event.sequence, event.kind, event, name)

    def _chain(
        self, index: int, item_id: str, sequence: int, kind: CustodyKind, event: Any, name: str
    ) -> None:
        prev = self.last.get(item_id)
        broken: tuple[CustodyRule, str] | None = None
        if prev is None:
            if sequence != 0 or kind is not CustodyKind.REGISTERED:
                broken = (
                    CustodyRule.CUSTODY_GAP,
                    f"item {item_id}'s first ledger entry is step {sequence} ({kind}), "
                    "not its registration",
                )
        elif kind is CustodyKind.REGISTERED:
            broken = (CustodyRule.CUSTODY_GAP, f"item {item_id} is registered twice")
        elif prev.kind in DISPOSAL_KINDS:
            broken = (CustodyRule.ITEM_DISPOSED, f"item {item_id} moved after {prev.kind}")
        elif sequence != prev.sequence + 1:
            broken = (
                CustodyRule.CUSTODY_GAP,
                f"item {item_id}: step {sequence} follows step {prev.sequence} "
                f"(entry {prev.index})",
            )
        elif event.from_user != prev.to_user:
            broken = (
                CustodyRule.CUSTODY_GAP,
                f"item {item_id}: {event.from_user} hands over, but {prev.to_user} received "
                f"it last (entry {prev.index})",
            )
        if broken is not None:
            rule, message = broken
            self._problem("chain_break", f"entry {index} breaks {rule}: {message}", index, name)
        self.last[item_id] = _Last(index, sequence, event.to_user, kind, name)

    def _items(self, conn: AsyncConnection, bound: int) -> None:
        """Each item's row (its custody state) against the chain the ledger holds."""
        after: str | None = None
        while True:
            stmt = sa.select(
                ITEM.c.id, ITEM.c.custodian, ITEM.c.last_sequence, ITEM.c.status
            ).order_by(ITEM.c.id)
            if after is not None:
                stmt = stmt.where(ITEM.c.id > after)
            rows = self._await(conn.execute(stmt.limit(self.batch))).all()
            if not rows:
                return
            for row in rows:
                last = self.last.get(row.id)
                if last is None:
                    # An item registered after the bound of this run is not judged here.
                    has_later = self._scalar(
                        conn,
                        sa.select(sa.func.count())
                        .select_from(EVENT)
                        .where(EVENT.c.item_id == row.id, EVENT.c.ledger_index >= bound),
                    )
                    if not has_later:
                        self._problem(
                            "item_unrecorded",
                            f"item {row.id} has no custody record in the ledger",
                        )
                    continue
                disposed = last.kind in DISPOSAL_KINDS
                if (
                    row.custodian != last.to_user
                    or row.last_sequence != last.sequence
                    or (row.status == EvidenceStatus.DISPOSED.value) != disposed
                ):
                    self._problem(
                        "item_state_mismatch",
                        f"item {row.id}: its row says custodian {row.custodian}, step "
                        f"{row.last_sequence}, {row.status}; its chain ends at entry "
                        f"{last.index} (event {last.event_id}): step {last.sequence}, "
                        f"held by {last.to_user}" + (", disposed" if disposed else ""),
                    )
            after = rows[-1].id

    def _state(self, state: Any, state_size: int, bound: int, tree: MerkleTree) -> None:
        if state is None:
            self._problem("ledger_state_missing", "the ledger state row is missing")
            return
        try:
            blob = bytes(state["nodes"])
            nodes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
            compact = CompactTree(state_size, nodes)
        except ValueError as exc:
            self._problem("ledger_state_mismatch", f"the ledger state row is malformed: {exc}")
            return
        if state_size != bound:
            self._problem(
                "ledger_state_mismatch",
                f"the ledger state says {state_size} entries; the store holds {bound}",
            )
        elif state_size <= tree.size and compact.root() != tree.root(state_size):
            self._problem(
                "ledger_state_mismatch",
                "the ledger state's tree does not match the tree recomputed from the records",
            )

    def _heads(
        self,
        conn: AsyncConnection,
        bound: int,
        sizes: list[int | None],
        extra: Sequence[str],
        tree: MerkleTree,
        origin: str | None,
    ) -> Iterator[str]:
        """The checkpoints whose signatures are to be verified, in size order (each stored row
        also checked against its own checkpoint), then the checkpoints held by others."""
        last, newest = 0, None
        while True:
            rows = self._await(
                conn.execute(
                    sa.select(HEAD)
                    .where(HEAD.c.tree_size > last, HEAD.c.tree_size <= bound)
                    .order_by(HEAD.c.tree_size)
                    .limit(self.batch)
                )
            ).all()
            if not rows:
                break
            for row in rows:
                size, root = int(row.tree_size), bytes(row.root_hash)
                self.heads_checked += 1
                # The row's columns must be what its (signed) checkpoint says.
                lines = row.checkpoint.split("\n", 3)
                row_ok = (
                    len(lines) == 4
                    and (origin is None or lines[0] == origin)
                    and lines[1] == str(size)
                    and lines[2] == b64(root)
                )
                if not row_ok:
                    self.head_problems.append(
                        LedgerProblem(
                            "tree_head_row_mismatch",
                            f"the stored tree head of size {size}: its size and root columns "
                            "are not what its checkpoint says",
                        )
                    )
                if (
                    self.signatures == "newest"
                    and row_ok
                    and size <= tree.size
                    and tree.root(size) == root
                ):
                    newest = row  # agrees with the tree; only the newest one's signature counts
                    continue
                sizes.append(size)
                yield row.checkpoint
            last = int(rows[-1].tree_size)
        if newest is not None:
            sizes.append(int(newest.tree_size))
            yield newest.checkpoint
        for note in extra:
            self.heads_checked += 1
            sizes.append(_checkpoint_size(note))
            yield note

    def _conclude(
        self, report: LedgerReport, head_sizes: list[int | None], bound: int
    ) -> StoreVerification:
        # Tree positions are ledger indexes up to the first entry without a leaf, and that
        # entry is itself reported exactly, so the domain's first bad entry is an index.
        problems = list(report.problems) + self.head_problems
        first, first_name, exact = (
            report.first_bad_index,
            report.first_bad_event_id,
            report.first_bad_exact,
        )
        if not problems and report.verified_size < len(self.hashes):
            # Every append signs a head in its own transaction: an entry no signed head
            # covers means the head that covered it was removed.
            at = report.verified_size
            problems.append(
                LedgerProblem(
                    "entries_unsigned",
                    f"entries from index {at} on are covered by no signed tree head, although "
                    "every append signs one",
                    at,
                    at + 1,
                    event_id=self.names.get(at),
                )
            )
            first, first_name, exact = at, self.names.get(at), True
        ok = not problems
        return StoreVerification(
            ok=ok,
            tree_size=bound,
            root_hash=report.root_hash,
            tree_heads_checked=self.heads_checked,
            tree_heads_verified=report.tree_heads_verified,
            first_bad_index=None if ok else first,
            first_bad_event_id=None if ok else first_name,
            first_bad_exact=False if ok else exact,
            problems=tuple(problems),
            head_sizes=tuple(head_sizes),
            signatures=self.signatures,
        )


def _checkpoint_size(note: str) -> int | None:
    lines = note.split("\n", 2)
    try:
        return int(lines[1]) if len(lines) > 1 else None
    except ValueError:
        return None
