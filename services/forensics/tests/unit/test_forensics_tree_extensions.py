"""The two additions the service needed from the ledger core: a tree that grows with the log
(``MerkleTree.extend``) and the head check on its own (``verify_tree``), which must judge
exactly as ``verify_log`` does."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cpu_forensics.domain.ledger import (
    LedgerProblem,
    MerkleTree,
    leaf_hashes,
    sign_checkpoint,
    verifier_key,
    verify_log,
    verify_tree,
)

ORIGIN = "forensics.cpu.local/custody-ledger"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VKEY = verifier_key(ORIGIN, KEY.public_key())


def hashes(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


@pytest.mark.parametrize("split", [0, 1, 2, 3, 5, 8, 13, 64, 100, 127, 128, 129])
def test_an_extended_tree_is_the_tree_built_at_once(split: int) -> None:
    every = hashes(300)
    grown = MerkleTree(every[:split])
    grown.extend(every[split : split + 7])
    grown.extend(every[split + 7 :])
    whole = MerkleTree(every)
    for size in (1, 2, 7, split or 1, 150, 255, 256, 257, 300):
        assert grown.root(size) == whole.root(size)
    assert grown.inclusion_proof(123, 300) == whole.inclusion_proof(123, 300)
    assert grown.consistency_proof(split or 1, 300) == whole.consistency_proof(split or 1, 300)


def test_extend_refuses_what_is_not_a_leaf_hash() -> None:
    with pytest.raises(ValueError):
        MerkleTree([]).extend([b"short"])


def test_verify_tree_judges_as_verify_log_does() -> None:
    leaves = [f"leaf {i}".encode() for i in range(20)]
    heads = [
        sign_checkpoint(KEY, ORIGIN, size, MerkleTree(leaf_hashes(leaves[:size])).root())
        for size in range(1, 21)
    ]
    tampered = list(leaves)
    tampered[11] = b"leaf 11, edited"
    expected = verify_log(tampered, heads, VKEY, origin=ORIGIN)
    got = verify_tree(
        leaf_hashes(tampered),
        iter(heads),  # a stream, as the store gives it
        VKEY,
        origin=ORIGIN,
        event_id_at=lambda i: f"event-{i}",
    )
    assert (got.ok, got.first_bad_index, got.first_bad_exact) == (False, 11, True)
    assert got.first_bad_event_id == "event-11"
    assert [p.code for p in got.problems] == [p.code for p in expected.problems]
    assert got.verified_size == expected.verified_size == 11


def test_an_entry_problem_given_by_the_caller_names_the_entry() -> None:
    leaves = [f"leaf {i}".encode() for i in range(8)]
    head = sign_checkpoint(KEY, ORIGIN, 8, MerkleTree(leaf_hashes(leaves)).root())
    problem = LedgerProblem("record_changed", "record 5 differs", 5, 6, event_id="e5")
    report = verify_tree(leaf_hashes(leaves), [head], VKEY, entry_problems=[problem])
    assert not report.ok
    assert (report.first_bad_index, report.tree_heads_verified) == (5, 1)
