"""The Merkle tree against RFC 9162 2.1: known answers, a naive reference, and every proof."""

from __future__ import annotations

import hashlib

import pytest

from cpu_forensics.domain.ledger import (
    EMPTY_ROOT,
    CompactTree,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)


def h(hex_digest: str) -> bytes:
    return bytes.fromhex(hex_digest)


# The Certificate Transparency reference leaves and the roots of their trees of size 0..8 (the
# RFC 6962 / RFC 9162 test vectors used by every CT implementation).
CT_LEAVES = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    h("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    h("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    h("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]
CT_INCLUSION = [  # (index, tree size, path)
    (
        0,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (2, 3, [h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (
        1,
        5,
        [
            h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]
CT_CONSISTENCY = [  # (first, second, path)
    (
        1,
        8,
        [
            h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]


# --- an independent, naive reference: RFC 9162 2.1.1 / 2.1.3.1 / 2.1.4.1 read literally ----


def ref_mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:])).digest()


def ref_path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], complete), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def sample_leaves(n: int) -> list[bytes]:
    return [f"custody event {i}".encode() * (1 + i % 3) for i in range(n)]


# --- known answers -----------------------------------------------------------------------------


def test_the_empty_tree_hash_is_sha256_of_the_empty_string() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest() == CT_ROOTS[0]
    assert merkle_root([]) == EMPTY_ROOT
    assert CompactTree().root() == EMPTY_ROOT


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert leaf_hash(b"") == CT_ROOTS[1] == hashlib.sha256(b"\x00").digest()
    a, b = leaf_hashes(CT_LEAVES[:2])
    assert node_hash(a, b) == CT_ROOTS[2] == hashlib.sha256(b"\x01" + a + b).digest()


def test_roots_of_the_reference_tree_at_every_size() -> None:
    hashes = leaf_hashes(CT_LEAVES)
    tree = MerkleTree(hashes)
    compact = CompactTree()
    assert compact.root() == CT_ROOTS[0]
    for size in range(len(CT_LEAVES) + 1):
        assert tree.root(size) == CT_ROOTS[size], size
        assert merkle_root(hashes[:size]) == CT_ROOTS[size]
    for size, leaf in enumerate(CT_LEAVES, start=1):
        compact.append(leaf)
        assert compact.root() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[bytes]) -> None:
    hashes = leaf_hashes(CT_LEAVES)
    assert inclusion_proof(hashes, index, size) == path
    assert verify_inclusion(hashes[index], index, size, path, CT_ROOTS[size])


@pytest.mark.parametrize(("first", "second", "path"), CT_CONSISTENCY)
def test_reference_consistency_proofs(first: int, second: int, path: list[bytes]) -> None:
    hashes = leaf_hashes(CT_LEAVES)
    assert consistency_proof(hashes, first, second) == path
    assert verify_consistency(first, second, CT_ROOTS[first], CT_ROOTS[second], path)


# --- against the naive reference ---------------------------------------------------------------


def test_root_matches_the_naive_recursion_for_sizes_1_to_70() -> None:
    leaves = sample_leaves(70)
    hashes = leaf_hashes(leaves)
    tree = MerkleTree(hashes)
    compact = CompactTree()
    for n in range(1, 71):
        compact.append(leaves[n - 1])
        want = ref_mth(leaves[:n])
        assert merkle_root(hashes[:n]) == want, n
        assert tree.root(n) == want, n
        assert compact.root() == want, n
        assert CompactTree.from_leaf_hashes(hashes[:n]).root() == want, n
        restored = CompactTree(compact.size, compact.nodes)
        assert restored.root() == want


def test_proofs_match_the_naive_recursion() -> None:
    leaves = sample_leaves(45)
    tree = MerkleTree(leaf_hashes(leaves))
    for n in range(1, 46):
        for m in range(n):
            assert tree.inclusion_proof(m, n) == ref_path(m, leaves[:n]), (m, n)
        for m in range(1, n):
            assert tree.consistency_proof(m, n) == ref_subproof(m, leaves[:n], True), (m, n)


# --- every proof verifies, and nothing altered does ------------------------------------------


def flip(value: bytes) -> bytes:
    return bytes([value[0] ^ 0x01]) + value[1:]


N = 40


@pytest.fixture(scope="module")
def tree40() -> MerkleTree:
    return MerkleTree(leaf_hashes(sample_leaves(N)))


def test_every_inclusion_proof_verifies_and_every_alteration_fails(tree40: MerkleTree) -> None:
    other = leaf_hash(b"not in the log")
    for n in range(1, N + 1):
        root = tree40.root(n)
        for m in range(n):
            leaf = tree40.leaf_hash(m)
            path = tree40.inclusion_proof(m, n)
            assert verify_inclusion(leaf, m, n, path, root), (m, n)
            for i in range(len(path)):
                bad = [*path]
                bad[i] = flip(bad[i])
                assert not verify_inclusion(leaf, m, n, bad, root), (m, n, i)
            for wrong_index in {m - 1, m + 1, m ^ 1, m ^ 2} - {m}:
                if 0 <= wrong_index < n:
                    assert not verify_inclusion(leaf, wrong_index, n, path, root), (m, n)
            # A wrong size (the probes of transparency-dev's own tests). Not every wrong size
            # can fail: size n and n + 1 may share the path's shape, and the root then decides.
            for wrong_size in {n * 2, n // 2} - {n}:
                assert not verify_inclusion(leaf, m, wrong_size, path, root), (m, n, wrong_size)
            assert not verify_inclusion(leaf, n, n, path, root)  # index out of range
            assert not verify_inclusion(other, m, n, path, root)
            assert not verify_inclusion(leaf, m, n, path, flip(root))
            assert not verify_inclusion(leaf, m, n, [*path, root], root)
            assert not verify_inclusion(leaf, m, n, [root, *path], root)
            if path:
                assert not verify_inclusion(leaf, m, n, path[:-1], root)


def test_every_consistency_proof_verifies_and_every_alteration_fails(tree40: MerkleTree) -> None:
    for n in range(1, N + 1):
        second_root = tree40.root(n)
        for m in range(0, n + 1):
            first_root = tree40.root(m)
            path = tree40.consistency_proof(m, n)
            assert verify_consistency(m, n, first_root, second_root, path), (m, n)
            assert not verify_consistency(m, n, flip(first_root), second_root, path)
            if m == 0:  # the empty tree is a prefix of every tree: nothing more to check
                assert path == []
                continue
            assert not verify_consistency(m, n, first_root, flip(second_root), path)
            if m == n:
                assert path == []
                continue
            for i in range(len(path)):
                bad = [*path]
                bad[i] = flip(bad[i])
                assert not verify_consistency(m, n, first_root, second_root, bad), (m, n, i)
            for wrong_first in {m - 1, m + 1} - {0, n}:
                assert not verify_consistency(wrong_first, n, first_root, second_root, path), (
                    m,
                    n,
                    wrong_first,
                )
            for wrong_second in {n * 2, n // 2} - {n}:
                assert not verify_consistency(m, wrong_second, first_root, second_root, path)
            assert not verify_consistency(m, n, first_root, second_root, [])
            assert not verify_consistency(m, n, first_root, second_root, path[:-1])
            assert not verify_consistency(m, n, first_root, second_root, [*path, second_root])
            assert not verify_consistency(m, n, first_root, second_root, [first_root, *path])
            assert not verify_consistency(m, n, second_root, first_root, path)
            assert not verify_consistency(n, m, second_root, first_root, path)


def test_edge_conventions() -> None:
    tree = MerkleTree(leaf_hashes(sample_leaves(3)))
    root = tree.root()
    assert verify_consistency(3, 3, root, root, [])
    assert not verify_consistency(3, 3, root, root, [root])
    assert verify_consistency(0, 3, EMPTY_ROOT, root, [])
    assert not verify_consistency(0, 3, root, root, [])  # size 0 has one root
    assert not verify_inclusion(root, 0, 0, [], root)
    with pytest.raises(ValueError):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError):
        tree.root(4)
    with pytest.raises(ValueError):
        MerkleTree([b"short"])
    with pytest.raises(ValueError):
        CompactTree(3, [root])  # size 3 needs two nodes


def test_compact_tree_appends_return_their_index_and_survive_a_restore() -> None:
    leaves = sample_leaves(20)
    tree = CompactTree()
    assert [tree.append(leaf) for leaf in leaves[:13]] == list(range(13))
    restored = CompactTree(tree.size, tree.nodes)
    for leaf in leaves[13:]:
        tree.append(leaf)
        restored.append_hash(leaf_hash(leaf))
    assert tree.root() == restored.root() == ref_mth(leaves)
    assert len(tree.nodes) == bin(20).count("1")
