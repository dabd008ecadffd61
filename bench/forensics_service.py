"""Forensics service benchmark: custody appends through the service layer on PostgreSQL, and
verifying the custody ledger (a million events) as a ratio to raw SHA-256 over the same bytes.

Run: ``uv run python -m bench forensics_service`` (part of ``make bench``), or
``uv run python bench/forensics_service.py [events] [appends] [store_events]``.
Prints figures only; nothing here asserts on time (machines differ, a shared box is noisy).

1. append: what one custody step costs the way the API records it (the same handler, no HTTP):
   lock the ledger row, load and check the item, the domain's rules, encrypt the fields, the
   RFC 8785 leaf, its hash, the compact tree, an Ed25519-signed checkpoint, the custody record,
   outbox events and audit row, commit. On a local PostgreSQL (``fsync=off``, like the tests);
   p50 / p99 of a registration and of an acceptance (both append one leaf and one head), and
   of a transfer request (no append) for comparison.
3. verify, 1M events: the service's tree check (:func:`verify_tree`, what ``cpu ledger verify``
   runs after rebuilding the leaves) over a million leaves made as in ``forensics_ledger``:
   leaf hashes, the tree, the newest signed head; then the root of every one of the million
   heads (one per append) against the tree; and the cost of verifying a million Ed25519
   head signatures, measured on a sample and scaled (stated as such).
2. verify, from a real store: ``verify_store`` end to end (read, decrypt, rebuild every record,
   compare with its stored leaf, tree, every head) on a PostgreSQL store of ``store_events``
   custody events written by the service's own adapters, with both signature modes; per entry,
   scaled to a million, and as a ratio to raw SHA-256 over the same leaf bytes.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

try:
    from bench.forensics_ledger import make_leaves
except ImportError:  # run as a script: bench/ itself is on sys.path
    from forensics_ledger import make_leaves  # type: ignore[no-redef]


def percentiles_ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return (
        f"p50 {q[49] * 1000:6.1f} ms, p99 {q[98] * 1000:6.1f} ms, max {max(samples) * 1000:6.1f} ms"
    )


# --- 1. appends through the service layer -------------------------------------------------------


async def bench_appends(url: str, key_file: Path, count: int) -> None:
    from cpu_forensics.adapters.public import EvidenceCreate, TransferAccept, TransferCreate
    from cpu_forensics.app import create_app
    from cpu_forensics.config import ForensicsSettings
    from cpu_forensics.service_layer import custody
    from cpu_shared.db import apply_migrations
    from cpu_shared.security.auth import Principal

    await apply_migrations("cpu_forensics.migrations", url)
    settings = ForensicsSettings(
        database_url=url, run_migrations=False, ledger_signing_key_file=key_file
    )
    app = create_app(settings)
    fx = app.state.forensics
    giver = Principal("fo.dara", frozenset({"forensic_officer"}), frozenset({"FST"}))
    receiver = Principal("lab.vanna", frozenset({"forensic_officer"}), frozenset({"FST"}))
    warmup = 20
    registered, requested, accepted = [], [], []
    clock = time.perf_counter
    for n in range(count + warmup):
        body = EvidenceCreate(
            case_id=str(uuid.uuid4()),
            type="biological_sample",
            description="Buccal swab, sealed kit",
            collected_at=datetime.now(UTC) - timedelta(hours=1),
            collected_location="Calmette Hospital, forensic room",
            seal_number=f"SEAL-BENCH-{n:06d}",
            storage_location="FST store, fridge 2",
        )
        t0 = clock()
        done = await custody.register(fx, giver, body, request=None)
        t1 = clock()
        _item, transfer = await custody.request_handover(
            fx,
            giver,
            done.item.id,
            TransferCreate(
                kind="sent_to_lab",
                to_user="lab.vanna",
                purpose="DNA profile",
                location="National lab",
            ),
            request=None,
        )
        t2 = clock()
        await custody.accept_handover(
            fx, receiver, done.item.id, transfer.transfer_id, TransferAccept(), request=None
        )
        t3 = clock()
        if n >= warmup:
            registered.append(t1 - t0)
            requested.append(t2 - t1)
            accepted.append(t3 - t2)
    await fx.runtime.engine.dispose()
    print(f"  {count} items, each registered, handed over and accepted ({2 * count} appends):")
    print(f"    register (1 leaf + 1 signed head): {percentiles_ms(registered)}")
    print(f"    accept   (1 leaf + 1 signed head): {percentiles_ms(accepted)}")
    print(f"    request  (no ledger append):       {percentiles_ms(requested)}")
    appends = registered + accepted
    print(
        f"    every append: {percentiles_ms(appends)}; "
        f"{len(appends) / sum(appends):.0f} appends/s one after another"
    )


# --- 3. a million events: the tree and the heads --------------------------------------------------


def best_of(runs: int, fn):  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_million(count: int) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cpu_forensics.domain.ledger import (
        MerkleTree,
        leaf_hashes,
        parse_and_verify_checkpoint,
        sign_checkpoint,
        verifier_key,
        verify_tree,
    )

    origin = "bench.cpu.local/custody-ledger"
    key = Ed25519PrivateKey.generate()
    vkey = verifier_key(origin, key.public_key())
    started = time.perf_counter()
    leaves = make_leaves(count)
    total = sum(map(len, leaves))
    print(
        f"  {count:,} custody events, {total / count:.0f} bytes a leaf, "
        f"made in {time.perf_counter() - started:.1f} s"
    )
    head = sign_checkpoint(key, origin, count, MerkleTree(leaf_hashes(leaves)).root())
    sha256 = hashlib.sha256
    raw_s, _ = best_of(3, lambda: [sha256(leaf).digest() for leaf in leaves])

    def tree_check():  # type: ignore[no-untyped-def]
        hashes = leaf_hashes(leaves)
        return verify_tree(hashes, [head], vkey, origin=origin)

    tree_s, report = best_of(3, tree_check)
    assert report.ok, report.summary()
    print(f"    raw SHA-256 over the leaf bytes:             {raw_s:6.2f} s")
    print(
        f"    leaf hashes + tree + newest signed head:     {tree_s:6.2f} s "
        f"= {tree_s / raw_s:.2f} x raw SHA-256 (target < 3 s)"
    )
    tree = MerkleTree(leaf_hashes(leaves))
    step = 1
    roots_s, _ = best_of(1, lambda: [tree.root(size) for size in range(1, count + 1, step)])
    print(
        f"    + the root of every one of {count:,} heads:  {roots_s:6.2f} s "
        f"(one head per append; --signatures newest stops here)"
    )
    sample = 5_000
    notes = [sign_checkpoint(key, origin, size, tree.root(size)) for size in range(1, sample + 1)]
    sig_s, _ = best_of(
        1, lambda: [parse_and_verify_checkpoint(n, vkey, origin=origin) for n in notes]
    )
    per = sig_s / sample
    print(
        f"    + every head's Ed25519 signature:            {per * count:6.1f} s "
        f"({per * 1e6:.0f} us a head, measured on {sample:,}, scaled to {count:,})"
    )
    full = tree_s + roots_s + per * count
    print(
        f"    all of it (--signatures all):                {full:6.1f} s "
        f"= {full / raw_s:.1f} x raw SHA-256"
    )


# --- 2. from a real store -----------------------------------------------------------------


async def build_store(url: str, key_file: Path, events: int) -> list[bytes]:
    """``events`` custody events written as the service writes them (8 per item); returns the
    leaf bytes, for the raw SHA-256 baseline."""
    import sqlalchemy as sa

    from cpu_forensics.adapters import records
    from cpu_forensics.adapters.ledger_store import HEAD, LEAF, STATE
    from cpu_forensics.adapters.records import Protection
    from cpu_forensics.adapters.repository import EVENT, ITEM
    from cpu_forensics.adapters.signing import build_signer
    from cpu_forensics.config import ForensicsSettings
    from cpu_forensics.domain.custody import accept_transfer, register_evidence, request_transfer
    from cpu_forensics.domain.ledger import CompactTree, leaf_bytes, leaf_hash
    from cpu_shared.db import apply_migrations, create_engine
    from cpu_shared.security.crypto import Keyring

    await apply_migrations("cpu_forensics.migrations", url)
    settings = ForensicsSettings(database_url=url, ledger_signing_key_file=key_file)
    signer = build_signer(settings)
    p = Protection(Keyring.load().field_cipher())
    tree = CompactTree()
    t0 = datetime.now(UTC) - timedelta(days=30)
    items, event_rows, leaf_rows, head_rows, leaves = [], [], [], [], []
    holders = ["fo.dara", "lab.vanna", "fo.sokha", "court.chan"]
    n = 0
    while n < events:
        at = t0 + timedelta(seconds=n)
        item, event = register_evidence(
            item_id=str(uuid.uuid4()),
            case_id=str(uuid.uuid4()),
            type="clothing",
            description="Child's school shirt, blood-stained collar",
            collected_by="fo.dara",
            collected_at=at - timedelta(hours=1),
            collected_location="Victim's home, Boeung Kak",
            seal_number="SEAL-2025-000101",
            seal_condition="intact",
            storage_location="FST store, shelf B3",
            registered_by="fo.dara",
            registered_at=at,
            event_id=str(uuid.uuid4()),
        )
        chain = [event]
        for step in range(1, 8):
            if n + len(chain) >= events:
                break
            moment = at + timedelta(milliseconds=step)
            transfer = request_transfer(
                item,
                transfer_id=str(uuid.uuid4()),
                kind="transfer",
                from_user=holders[(step - 1) % 4],
                to_user=holders[step % 4],
                purpose="Examination",
                location="National lab",
                at=moment,
                recorded_at=moment,
            )
            _t, moved = accept_transfer(
                item,
                transfer.transfer_id,
                by_user=holders[step % 4],
                at=moment,
                event_id=str(uuid.uuid4()),
                recorded_at=moment,
            )
            chain.append(moved)
        items.append(records.item_values(item, p, now=at))
        for e in chain:
            leaf = leaf_bytes(e)
            hashed = leaf_hash(leaf)
            index = tree.append_hash(hashed)
            root = tree.root()
            leaves.append(leaf)
            event_rows.append(records.event_values(e, index, p))
            leaf_rows.append(
                {
                    "ledger_index": index,
                    "event_id": e.event_id,
                    "item_id": e.item_id,
                    "leaf_enc": p.seal_leaf(index, leaf),
                    "leaf_hash": hashed,
                    "appended_at": e.recorded_at,
                }
            )
            head_rows.append(
                {
                    "tree_size": index + 1,
                    "root_hash": root,
                    "timestamp": e.recorded_at,
                    "checkpoint": signer.checkpoint(index + 1, root),
                }
            )
        n += len(chain)
    engine = create_engine(url)
    async with engine.begin() as conn:
        for table, rows in (
            (ITEM, items),
            (EVENT, event_rows),
            (LEAF, leaf_rows),
            (HEAD, head_rows),
        ):
            for start in range(0, len(rows), 2000):
                await conn.execute(sa.insert(table), rows[start : start + 2000])
        await conn.execute(
            sa.update(STATE)
            .where(STATE.c.id == 1)
            .values(tree_size=tree.size, nodes=b"".join(tree.nodes), updated_at=datetime.now(UTC))
        )
    await engine.dispose()
    return leaves


def bench_store(url: str, key_file: Path, events: int, million: int) -> None:
    from cpu_forensics.adapters.signing import build_signer
    from cpu_forensics.config import ForensicsSettings
    from cpu_forensics.service_layer.verification import verify_store
    from cpu_shared.security.crypto import Keyring

    started = time.perf_counter()
    leaves = asyncio.run(build_store(url, key_file, events))
    took = time.perf_counter() - started
    print(f"  a store of {events:,} custody events (and heads), written in {took:.0f} s")
    signer = build_signer(ForensicsSettings(database_url=url, ledger_signing_key_file=key_file))
    cipher = Keyring.load().field_cipher()
    sha256 = hashlib.sha256
    raw_s, _ = best_of(3, lambda: [sha256(leaf).digest() for leaf in leaves])
    print(f"    raw SHA-256 over the leaf bytes: {raw_s * 1000:8.1f} ms")
    for mode in ("newest", "all"):
        took, outcome = best_of(
            1,
            lambda mode=mode: verify_store(
                url, cipher, signer.verifier_key, origin=signer.origin, signatures=mode
            ),
        )
        assert outcome.ok, outcome.summary()
        per = took / events
        print(
            f"    verify_store --signatures {mode:6s}: {took:6.1f} s, {per * 1e6:5.0f} us an entry "
            f"= {took / raw_s:,.0f} x raw SHA-256; "
            f"scaled to {million:,}: {per * million / 60:5.1f} min"
        )


def main(events: int = 1_000_000, appends: int = 300, store_events: int = 20_000) -> None:
    from cpu_platform.devstack.postgres import LocalPostgres

    base = Path(tempfile.mkdtemp(prefix="cpu-bench-forensics-"))
    # Keys of this run only.
    os.environ.setdefault("CPU_AUTH_DEV_SIGNING_KEY_FILE", str(base / "signing-key.pem"))
    os.environ.setdefault("CPU_CRYPTO_DEV_KEYS_FILE", str(base / "master-keys.json"))
    key_file = base / "ledger-signing-key.pem"
    print(f"forensics service: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with LocalPostgres(base / "pg") as pg:
        pg.create_database("bench_forensics")
        print("1. custody appends through the service layer on PostgreSQL")
        asyncio.run(bench_appends(pg.url("bench_forensics"), key_file, appends))
        pg.create_database("bench_forensics_store")
        print("2. verifying a real store (read, decrypt, rebuild, compare, tree, heads)")
        bench_store(pg.url("bench_forensics_store"), key_file, store_events, events)
    print(f"3. verifying {events:,} custody events (the tree and the heads)")
    bench_million(events)


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
