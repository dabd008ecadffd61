"""Known hash sets: loading Project VIC JSON and CSV, exact MD5/SHA-1 matches, and PDQ near
matches within a Hamming distance of 31 (the multi-index search checked against brute force)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cpu_icac.domain.hash_sets import (
    HashIndex,
    HashMatch,
    HashSet,
    HashSetError,
    KnownHash,
    PdqIndex,
    load_hash_csv,
    load_hash_set,
    load_project_vic_json,
    pdq_distance,
)
from cpu_icac.domain.parsing import parse_tip_file
from cpu_icac.domain.tip_report import TipReport, parse_tip_report

DATA = Path(__file__).parent / "data"  # copies of ../shared/data samples
CSV_PDQ = "d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22"


def sample_index() -> HashIndex:
    return HashIndex.of(
        [
            load_hash_set((DATA / "sample-vics.json").read_bytes(), name="project-vic"),
            load_hash_set((DATA / "sample-hashes.csv").read_bytes(), name="national"),
        ]
    )


def flip(hex_hash: str, bits: int, seed: int = 1) -> str:
    value = int(hex_hash, 16)
    for bit in random.Random(seed).sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


def report_with(**file: object) -> TipReport:
    return parse_tip_report(
        {
            "provider": "ncmec",
            "report_id": "T-1",
            "incident_type": "child_sexual_abuse_material",
            "files": [file],
        }
    )


def test_project_vic_json_sample() -> None:
    loaded = load_project_vic_json((DATA / "sample-vics.json").read_bytes(), name="project-vic")
    assert loaded.name == "project-vic"
    assert loaded.skipped == 0 and loaded.problems == ()
    assert loaded.entries == (
        KnownHash(
            "92eb5ffee6ae2fec3ad71c777531578f", "e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98", None, 1
        ),
        KnownHash(
            "d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709", None, 0
        ),
        KnownHash("4a8a08f09d37b73795649038408b5f33", None, None, 2),
    )


def test_csv_sample() -> None:
    loaded = load_hash_csv((DATA / "sample-hashes.csv").read_bytes(), name="national")
    assert loaded.entries == (
        KnownHash(
            "0cc175b9c0f1b6a831c399e269772661", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8", None, 1
        ),
        KnownHash(None, None, CSV_PDQ, 1),
    )


def test_format_is_detected() -> None:
    assert len(load_hash_set((DATA / "sample-vics.json").read_bytes(), name="a").entries) == 3
    assert len(load_hash_set((DATA / "sample-hashes.csv").read_bytes(), name="b").entries) == 2


def test_bad_entries_are_skipped_and_counted_without_their_values() -> None:
    vics = {
        "value": [
            {"MD5": "NOT-A-HASH", "Category": 1},
            {"MD5": "92EB5FFEE6AE2FEC3AD71C777531578F", "SHA1": "short", "Category": "x"},
            "not an object",
            {"Category": 1},
        ]
    }
    loaded = load_project_vic_json(json.dumps(vics), name="odd")
    assert loaded.entries == (KnownHash("92eb5ffee6ae2fec3ad71c777531578f", None, None, None),)
    assert loaded.skipped == 3
    assert loaded.problems == (
        "entry 0: md5 is not a valid md5 hash; ignored",
        "entry 0: no valid md5, sha1 or pdq; skipped",
        "entry 1: sha1 is not a valid sha1 hash; ignored",
        "entry 1: category is not a non-negative integer; ignored",
        "entry 2: not an object; skipped",
        "entry 3: no valid md5, sha1 or pdq; skipped",
    )
    assert not any("NOT-A-HASH" in p for p in loaded.problems)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"{not json", "x"),
        (b'{"something": []}', "x"),
        (b"a,b,c\n1,2,3\n", "x"),
        (b"md5\n0cc175b9c0f1b6a831c399e269772661\n", "  "),
    ],
)
def test_unreadable_sets_are_refused(data: bytes, name: str) -> None:
    with pytest.raises(HashSetError):
        load_hash_set(data, name=name)


def test_sample_tips_match_the_sample_sets() -> None:
    index = sample_index()
    tips = [i.report for i in parse_tip_file((DATA / "sample-tips.jsonl").read_bytes())]
    matches = index.match_reports([t for t in tips if t is not None])
    assert matches == [
        [HashMatch("national", "md5", 0, 1, 0)],
        [],
        [HashMatch("project-vic", "md5", 0, 1, 0)],
    ]
    assert matches[0][0].as_dict() == {
        "hash_set": "national",
        "algorithm": "md5",
        "distance": 0,
        "category": 1,
        "file_index": 0,
    }
    assert matches[0][0].category_label == "child_abuse_material"


def test_sha1_alone_matches() -> None:
    match = sample_index().match_report(
        report_with(sha1="E9D71F5EE7C92D6DC9E92FFDAD17B8BD49418F98")
    )
    assert match == [HashMatch("project-vic", "sha1", 0, 1, 0)]


def test_pdq_at_distance_31_matches_and_32_does_not() -> None:
    index = sample_index()
    near = flip(CSV_PDQ, 31)
    far = flip(CSV_PDQ, 32)
    assert pdq_distance(near, CSV_PDQ) == 31 and pdq_distance(far, CSV_PDQ) == 32
    assert index.match_report(report_with(pdq=near)) == [HashMatch("national", "pdq", 31, 1, 0)]
    assert index.match_report(report_with(pdq=far)) == []
    assert index.match_report(report_with(pdq=CSV_PDQ)) == [HashMatch("national", "pdq", 0, 1, 0)]
    assert index.pdq_search(near) == [("national", 1, 31)]


def test_exact_match_is_preferred_to_pdq_in_the_same_set() -> None:
    index = HashIndex.of(
        [HashSet("s", (KnownHash("0cc175b9c0f1b6a831c399e269772661", None, CSV_PDQ, 1),))]
    )
    found = index.match_report(
        report_with(md5="0cc175b9c0f1b6a831c399e269772661", pdq=flip(CSV_PDQ, 3))
    )
    assert found == [HashMatch("s", "md5", 0, 1, 0)]


def test_nearest_pdq_match_per_set() -> None:
    index = HashIndex.of(
        [
            HashSet(
                "s",
                (KnownHash(None, None, CSV_PDQ, 1), KnownHash(None, None, flip(CSV_PDQ, 20), 2)),
            )
        ]
    )
    assert index.match_report(report_with(pdq=flip(CSV_PDQ, 2, seed=9))) == [
        HashMatch("s", "pdq", 2, 1, 0)
    ]


def test_empty_file_hashes_never_match() -> None:
    index = sample_index()
    assert index.lookup_md5("d41d8cd98f00b204e9800998ecf8427e") == [("project-vic", 0)]
    assert index.match_report(report_with(md5="d41d8cd98f00b204e9800998ecf8427e")) == []


def test_a_set_added_again_replaces_the_old_one() -> None:
    index = sample_index()
    index.add(HashSet("national", (KnownHash("4a8a08f09d37b73795649038408b5f33", None, None, 4),)))
    assert index.set_names == ["project-vic", "national"]
    assert index.lookup_md5("0cc175b9c0f1b6a831c399e269772661") == []
    assert index.lookup_md5("4a8a08f09d37b73795649038408b5f33") == [
        ("project-vic", 2),
        ("national", 4),
    ]
    assert index.pdq_search(CSV_PDQ) == []


def test_pdq_answers_follow_index_changes() -> None:
    index = HashIndex()
    query = flip(CSV_PDQ, 10)
    assert index.pdq_search(query) == []
    index.add(HashSet("a", (KnownHash(None, None, flip(CSV_PDQ, 40), 1),)))
    assert index.pdq_search(query) == []  # remembered answers are dropped on change
    index.add(HashSet("b", (KnownHash(None, None, CSV_PDQ, 2),)))
    assert index.pdq_search(query) == [("b", 2, 10)]
    assert index.pdq_search(query) == [("b", 2, 10)]


@pytest.mark.parametrize("max_distance", [0, 8, 15, 16, 24, 31, 40])
def test_multi_index_search_equals_brute_force(max_distance: int) -> None:
    rng = random.Random(max_distance)
    hashes = [f"{rng.getrandbits(256):064x}" for _ in range(3000)]
    index = PdqIndex()
    for position, value in enumerate(hashes):
        index.add(value, "s", position)
    queries = [f"{rng.getrandbits(256):064x}" for _ in range(20)]
    for k in range(60):  # near copies at every distance around the limit
        queries.append(flip(hashes[k * 7], k % 45, seed=k))
    found = index.search_many(queries, max_distance)
    for query, hits in zip(queries, found, strict=True):
        expected = sorted(
            (i, pdq_distance(query, h))
            for i, h in enumerate(hashes)
            if pdq_distance(query, h) <= max_distance
        )
        assert sorted(hits) == expected
        assert [d for _, d in hits] == sorted(d for _, d in hits)
