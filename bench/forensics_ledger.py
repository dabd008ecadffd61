"""Custody ledger benchmark: verifying 1M custody events, and the latency of one append.

Run: ``uv run python -m bench forensics_ledger`` (part of ``make bench``), or
``uv run python bench/forensics_ledger.py [events]`` for another size (default 1,000,000).
Prints figures only; nothing here asserts on time (machines differ, and a shared CI box is noisy).

* verify: ``verify_log`` over the leaf bytes of N custody events against one signed tree head:
  recompute every leaf hash, build the tree level by level, check the head's signature and its
  root. Reported in seconds and as a ratio to plain ``hashlib.sha256`` over the same leaf bytes
  (the floor any verifier pays), best of a few runs.
* append: ``CompactTree.append`` latency, p50/p99, and the same with what the service does per
  custody event besides: the new root and a signed checkpoint.
* leaf: what it costs to rebuild a leaf from a stored record: RFC 8785 encoding
  (``leaf_bytes``), and the equivalent check ``leaf_matches_event``.

The N leaves are made from two real leaves (a registration and a transfer) by substituting ids
into their bytes, checked against ``leaf_bytes`` on a sample, because encoding a million events
with the pure-Python JCS encoder would take most of a minute before the benchmark starts.
"""

from __future__ import annotations

import gc
import hashlib
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cpu_forensics.domain.custody import CustodyEvent, CustodyKind, RegisteredEvidence
from cpu_forensics.domain.evidence import DigitalHashes, EvidenceType, SealCondition
from cpu_forensics.domain.ledger import (
    CompactTree,
    MerkleTree,
    leaf_bytes,
    leaf_hashes,
    leaf_matches_event,
    sign_checkpoint,
    verifier_key,
    verify_log,
)

ORIGIN = "forensics.cpu.local/custody-ledger"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MOVES_PER_ITEM = 7  # one registration, then seven movements per item
T = TypeVar("T")


def _ids(n: int) -> tuple[str, str]:
    return f"{n:08x}-7d1c-4b1e-9a55-0c2f6e8d4b1a", f"{n // (MOVES_PER_ITEM + 1):08x}-ev"


def sample_event(n: int) -> CustodyEvent:
    """Event n of the synthetic log: item n // 8, its registration or one of its moves."""
    event_id, item_id = _ids(n)
    sequence = n % (MOVES_PER_ITEM + 1)
    at = T0 + timedelta(seconds=n)
    common = {
        "event_id": event_id,
        "item_id": item_id,
        "case_id": "0000c0de-case",
        "sequence": sequence,
        "seal_number": "SEAL-2025-004211",
        "seal_condition": SealCondition.INTACT,
        "at": at,
        "recorded_at": at,
    }
    if sequence == 0:
        return CustodyEvent(
            kind=CustodyKind.REGISTERED,
            from_user="officer.dara",
            to_user="officer.dara",
            purpose="registration",
            location="Phnom Penh HQ evidence store, shelf B3",
            evidence=RegisteredEvidence(
                type=EvidenceType.FORENSIC_IMAGE,
                description="Physical image of a Samsung A14 seized at the suspect's home",
                collected_by="analyst.chan",
                collected_at=T0 - timedelta(days=1),
                collected_location="National lab, digital unit, bench 2",
                parent_id=None,
                hashes=DigitalHashes(sha256="ab" * 32, md5="cd" * 16),
                acquisition_tool="Cellebrite UFED 7.60",
            ),
            **common,  # type: ignore[arg-type]
        )
    return CustodyEvent(
        kind=CustodyKind.TRANSFER,
        from_user="store.sokha",
        to_user="analyst.chan",
        purpose="DNA swabbing of the collar and cuffs",
        location="National lab, intake desk",
        transfer_id=f"tr-{event_id}",
        requested_at=at,
        **common,  # type: ignore[arg-type]
    )


def make_leaves(count: int) -> list[bytes]:
    """``leaf_bytes(sample_event(n))`` for n < count, by substitution into two templates."""
    templates = {}
    for seq in (0, 1):
        event = sample_event(seq)
        event_id, item_id = _ids(seq)
        at_text = event.at.isoformat()[:19]  # the seconds; the fraction is .000000
        leaf = leaf_bytes(event)
        leaf = leaf.replace(event_id.encode(), b"%(e)s").replace(item_id.encode(), b"%(i)s")
        leaf = leaf.replace(f'"sequence":{seq}'.encode(), b'"sequence":%(s)d')
        templates[seq] = leaf.replace(at_text.encode(), b"%(t)s")
    leaves = []
    for n in range(count):
        event_id, item_id = _ids(n)
        seq = n % (MOVES_PER_ITEM + 1)
        at_bytes = (T0 + timedelta(seconds=n)).isoformat()[:19].encode()
        fields = {b"e": event_id.encode(), b"i": item_id.encode(), b"s": seq, b"t": at_bytes}
        leaves.append(templates[min(seq, 1)] % fields)
    for n in (*range(0, 64), count // 2, count - 1):
        if n < count:
            assert leaves[n] == leaf_bytes(sample_event(n)), f"template drifted at {n}"
    return leaves


def best_of(runs: int, fn: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result  # type: ignore[return-value]


def percentiles(samples_ns: list[int]) -> str:
    q = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return (
        f"p50 {q[49] / 1000:.1f} us, p99 {q[98] / 1000:.1f} us, max {max(samples_ns) / 1000:.1f} us"
    )


def bench_verify(leaves: list[bytes], key: Ed25519PrivateKey, vkey: str) -> None:
    count = len(leaves)
    head = sign_checkpoint(key, ORIGIN, count, MerkleTree(leaf_hashes(leaves)).root())
    sha256 = hashlib.sha256
    raw_s, _ = best_of(3, lambda: [sha256(leaf).digest() for leaf in leaves])
    verify_s, report = best_of(3, lambda: verify_log(leaves, [head], vkey, origin=ORIGIN))
    assert report.ok and report.verified_size == count, report.summary()
    print(f"  raw SHA-256 over the leaf bytes:    {raw_s:6.3f} s")
    print(
        f"  verify (leaf hashes + tree + head): {verify_s:6.3f} s "
        f"= {verify_s / raw_s:.2f} x raw SHA-256 (target < 3 s)"
    )
    hashes = leaf_hashes(leaves)
    tree_s, _ = best_of(3, lambda: MerkleTree(hashes).root())
    print(f"    of which the tree over the leaf hashes: {tree_s:.3f} s")
    indices, event_ids = list(range(count)), [_ids(n)[0] for n in range(count)]
    full_s, report = best_of(
        1,
        lambda: verify_log(
            leaves,
            [head],
            vkey,
            origin=ORIGIN,
            stored_leaf_hashes=hashes,
            indices=indices,
            event_ids=event_ids,
        ),
    )
    assert report.ok, report.summary()
    print(f"  verify, also with stored hashes, indices and event ids: {full_s:.3f} s")


def bench_append(leaves: list[bytes], key: Ed25519PrivateKey) -> None:
    appends = min(len(leaves), 200_000)
    tree = CompactTree()
    samples = []
    clock = time.perf_counter_ns
    gc.disable()  # measure the tree, not the collector's pauses
    try:
        for leaf in leaves[:appends]:
            t = clock()
            tree.append(leaf)
            samples.append(clock() - t)
    finally:
        gc.enable()
    print(f"  append, {appends:,} appends:          {percentiles(samples)}")
    signed = []
    for n in range(10_000):
        leaf = leaves[(appends + n) % len(leaves)]
        t = clock()
        tree.append(leaf)
        sign_checkpoint(key, ORIGIN, tree.size, tree.root())
        signed.append(clock() - t)
    print(f"  append + root + signed checkpoint: {percentiles(signed)}")


def bench_leaf_encoding(count: int) -> None:
    events = [sample_event(n) for n in range(2_000)]
    encode_s, encoded = best_of(1, lambda: [leaf_bytes(e) for e in events])
    match_s, _ = best_of(
        1, lambda: [leaf_matches_event(leaf, e) for leaf, e in zip(encoded, events, strict=True)]
    )
    per_encode, per_match = encode_s / len(events), match_s / len(events)
    print(
        f"  rebuild a leaf from its record: RFC 8785 {per_encode * 1e6:.0f} us, "
        f"leaf_matches_event {per_match * 1e6:.0f} us "
        f"(for {count:,}: {per_encode * count:.0f} s vs {per_match * count:.0f} s)"
    )


def main(count: int = 1_000_000) -> None:
    key = Ed25519PrivateKey.generate()
    vkey = verifier_key(ORIGIN, key.public_key())
    start = time.perf_counter()
    leaves = make_leaves(count)
    total_bytes = sum(map(len, leaves))
    print(
        f"forensics ledger: {count:,} custody events, {total_bytes / count:.0f} bytes a leaf "
        f"on average ({total_bytes / 1e6:.0f} MB), made in {time.perf_counter() - start:.1f} s"
    )
    bench_verify(leaves, key, vkey)
    bench_append(leaves, key)
    bench_leaf_encoding(count)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
