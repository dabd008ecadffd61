"""The ledger: leaf bytes, and verify_log naming the first bad entry of a tampered log."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cpu_forensics.domain.custody import (
    CustodyEvent,
    CustodyKind,
    accept_transfer,
    register_evidence,
    request_transfer,
)
from cpu_forensics.domain.evidence import DigitalHashes, EvidenceItem
from cpu_forensics.domain.ledger import (
    CompactTree,
    LedgerReport,
    MerkleTree,
    leaf_bytes,
    leaf_document,
    leaf_hash,
    leaf_hashes,
    leaf_matches_event,
    parse_and_verify_checkpoint,
    sign_checkpoint,
    verifier_key,
    verify_inclusion,
    verify_log,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ORIGIN = "forensics.cpu.local/custody-ledger"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VKEY = verifier_key(ORIGIN, KEY.public_key())


def forensic_image_registration() -> CustodyEvent:
    _, event = register_evidence(
        item_id="ev-000001",
        case_id="case-000001",
        type="forensic_image",
        description="Image of the Samsung A14",
        collected_by="analyst.chan",
        collected_at=T0,
        collected_location="Lab bench 2",
        seal_number="SEAL-0042",
        seal_condition="intact",
        storage_location="\u1783\u17d2\u179b\u17b6\u17c6\u1784",  # Khmer: "store"
        registered_by="analyst.chan",
        registered_at=T0 + timedelta(minutes=3, microseconds=5),
        event_id="evt-000001",
        hashes=DigitalHashes(
            sha256="9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
        ),
        acquisition_tool="FTK Imager 4.7",
    )
    return event


# --- the leaf ---------------------------------------------------------------------------------


def test_the_leaf_is_the_jcs_of_the_documented_shape() -> None:
    leaf = leaf_bytes(forensic_image_registration())
    assert leaf == (
        '{"at":"2025-03-01T08:03:00.000005Z","case_id":"case-000001","event_id":"evt-000001",'
        '"evidence":{"acquisition_tool":"FTK Imager 4.7",'
        '"collected_at":"2025-03-01T08:00:00.000000Z","collected_by":"analyst.chan",'
        '"collected_location":"Lab bench 2","description":"Image of the Samsung A14",'
        '"md5":null,"parent_id":null,"sha1":null,'
        '"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",'
        '"type":"forensic_image"},"format":"cpu-custody-event/v1",'
        '"from_user":"analyst.chan","item_id":"ev-000001","kind":"registered",'
        '"location":"\u1783\u17d2\u179b\u17b6\u17c6\u1784","purpose":"registration",'
        '"receipt_note":null,"recorded_at":"2025-03-01T08:03:00.000005Z","requested_at":null,'
        '"seal_change_reason":null,"seal_condition":"intact","seal_number":"SEAL-0042",'
        '"sequence":0,"to_user":"analyst.chan","transfer_id":null}'
    ).encode("utf-8")
    assert leaf == rfc8785.dumps(leaf_document(forensic_image_registration()))


def test_the_same_instant_in_another_zone_gives_the_same_leaf() -> None:
    event = forensic_image_registration()
    from datetime import timezone

    elsewhere = dataclasses.replace(event, at=event.at.astimezone(timezone(timedelta(hours=7))))
    assert leaf_bytes(elsewhere) == leaf_bytes(event)


def test_leaf_matches_event_is_the_fast_equivalent_of_re_encoding() -> None:
    event = forensic_image_registration()
    leaf = leaf_bytes(event)
    assert leaf_matches_event(leaf, event)
    for changed in (
        dataclasses.replace(event, location="Another store"),
        dataclasses.replace(event, sequence=1),
        dataclasses.replace(event, at=event.at + timedelta(microseconds=1)),
        dataclasses.replace(event, to_user="analyst.other"),
    ):
        assert not leaf_matches_event(leaf, changed)
    assert not leaf_matches_event(leaf.replace(b'"sequence":0', b'"sequence":false'), event)
    assert not leaf_matches_event(b"not json", event)


# --- a log to tamper with ---------------------------------------------------------------------


def build_log(items: int = 6, moves: int = 5) -> list[CustodyEvent]:
    """Interleaved chains of several items, in ledger (append) order."""
    ledger: list[CustodyEvent] = []
    holders: list[EvidenceItem] = []
    ids = itertools.count()
    for i in range(items):
        item, event = register_evidence(
            item_id=f"ev-{i:06d}",
            case_id="case-000001",
            type="clothing",
            description=f"Item {i}",
            collected_by="officer.dara",
            collected_at=T0,
            collected_location="Scene",
            seal_number=f"SEAL-{i:04d}",
            seal_condition="intact",
            storage_location="HQ store",
            registered_by="officer.dara",
            registered_at=T0,
            event_id=f"evt-{next(ids):06d}",
        )
        holders.append(item)
        ledger.append(event)
    people = ["store.sokha", "analyst.chan", "officer.dara"]
    for step in range(1, moves + 1):
        at = T0 + timedelta(hours=step)
        for item in holders:
            to_user = next(p for p in people[step % 3 :] + people if p != item.custodian)
            transfer = request_transfer(
                item,
                transfer_id=f"tr-{next(ids):06d}",
                kind=CustodyKind.TRANSFER,
                from_user=item.custodian,
                to_user=to_user,
                purpose="custody rotation",
                location="HQ store",
                at=at,
                recorded_at=at,
            )
            _, event = accept_transfer(
                item,
                transfer.transfer_id,
                by_user=to_user,
                at=at,
                event_id=f"evt-{next(ids):06d}",
                recorded_at=at,
            )
            ledger.append(event)
    return ledger


@pytest.fixture(scope="module")
def events() -> list[CustodyEvent]:
    return build_log()


@pytest.fixture(scope="module")
def leaves(events: list[CustodyEvent]) -> list[bytes]:
    return [leaf_bytes(e) for e in events]


@pytest.fixture(scope="module")
def heads_every_append(leaves: list[bytes]) -> list[str]:
    """What the service keeps: one signed head after every append."""
    tree = CompactTree()
    heads = []
    for leaf in leaves:
        tree.append(leaf)
        heads.append(sign_checkpoint(KEY, ORIGIN, tree.size, tree.root()))
    return heads


def heads_at(leaves: Sequence[bytes], sizes: Sequence[int]) -> list[str]:
    tree = MerkleTree(leaf_hashes(leaves))
    return [sign_checkpoint(KEY, ORIGIN, s, tree.root(s)) for s in sizes]


def event_id(leaf: bytes) -> str:
    import json

    return str(json.loads(leaf)["event_id"])


def assert_first_bad(report: LedgerReport, index: int, leaves: Sequence[bytes]) -> None:
    assert not report.ok, report.summary()
    assert report.first_bad_index == index, report.summary()
    assert report.first_bad_exact, report.summary()
    if index < len(leaves):
        assert report.first_bad_event_id == event_id(leaves[index])


def test_an_intact_log_verifies(leaves: list[bytes], heads_every_append: list[str]) -> None:
    report = verify_log(
        leaves,
        heads_every_append,
        VKEY,
        origin=ORIGIN,
        stored_leaf_hashes=leaf_hashes(leaves),
        indices=list(range(len(leaves))),
        event_ids=[event_id(leaf) for leaf in leaves],
    )
    assert report.ok, report.summary()
    assert report.problems == ()
    assert report.first_bad_index is None
    assert report.tree_size == report.verified_size == len(leaves)
    assert report.tree_heads_verified == len(leaves)
    assert report.unsigned_entries == 0
    assert report.summary().startswith("ledger intact")


def test_every_event_has_an_inclusion_proof_under_the_signed_head(
    leaves: list[bytes], heads_every_append: list[str]
) -> None:
    _, size, root = parse_and_verify_checkpoint(heads_every_append[-1], VKEY, origin=ORIGIN)
    tree = MerkleTree(leaf_hashes(leaves))
    for index, leaf in enumerate(leaves):
        assert verify_inclusion(leaf_hash(leaf), index, size, tree.inclusion_proof(index), root)


def changed_byte(leaves: list[bytes], k: int) -> list[bytes]:
    tampered = [*leaves]
    tampered[k] = tampered[k].replace(b"HQ store", b"HQ stor3", 1)
    assert tampered[k] != leaves[k]
    return tampered


@pytest.mark.parametrize("k", [0, 1, 17, 35])
def test_a_changed_byte_is_named(
    leaves: list[bytes], heads_every_append: list[str], k: int
) -> None:
    tampered = changed_byte(leaves, k)
    # With what the service keeps: a head per append.
    assert_first_bad(verify_log(tampered, heads_every_append, VKEY), k, tampered)
    # With only the stored leaf hashes and the newest head.
    report = verify_log(
        tampered, heads_every_append[-1:], VKEY, stored_leaf_hashes=leaf_hashes(leaves)
    )
    assert_first_bad(report, k, tampered)
    assert {p.code for p in report.problems} == {"leaf_changed", "root_mismatch"}


def test_a_changed_byte_with_sparse_heads_is_bracketed(leaves: list[bytes]) -> None:
    heads = heads_at(leaves, [10, 20, 30])
    report = verify_log(changed_byte(leaves, 23), heads, VKEY)
    assert not report.ok
    assert (report.first_bad_index, report.first_bad_exact) == (20, False)
    assert report.verified_size == 20
    assert "from index 20 to 29" in report.summary()


@pytest.mark.parametrize("k", [0, 13, 34])
def test_a_deleted_entry_is_named(
    leaves: list[bytes], heads_every_append: list[str], k: int
) -> None:
    remaining = [*leaves[:k], *leaves[k + 1 :]]
    indices = [*range(k), *range(k + 1, len(leaves))]  # the rows keep their stored indices
    assert_first_bad(verify_log(remaining, heads_every_append, VKEY), k, remaining)
    report = verify_log(remaining, heads_every_append[-1:], VKEY, indices=indices)
    assert_first_bad(report, k, remaining)
    assert report.problems[0].code == "index_gap"
    assert f"entry {k} is missing" in report.problems[0].message
    report = verify_log(
        remaining, heads_every_append[-1:], VKEY, stored_leaf_hashes=leaf_hashes(leaves)
    )
    assert_first_bad(report, k, remaining)


def test_deleting_the_newest_entries_is_named(
    leaves: list[bytes], heads_every_append: list[str]
) -> None:
    remaining = leaves[:-3]
    report = verify_log(remaining, heads_every_append, VKEY)
    assert_first_bad(report, len(remaining), remaining)
    assert report.first_bad_event_id is None  # gone with its row
    assert report.problems[0].code == "entries_missing"
    # With the newest head held elsewhere (published as an event), even deleting every head
    # that covered the removed entries is caught.
    report = verify_log(remaining, heads_every_append[: len(remaining)], VKEY)
    assert report.ok  # locally undetectable ...
    report = verify_log(
        remaining, [*heads_every_append[: len(remaining)], heads_every_append[-1]], VKEY
    )
    assert_first_bad(report, len(remaining), remaining)  # ... but not against a witness


@pytest.mark.parametrize(("i", "j"), [(0, 1), (4, 9), (20, 35)])
def test_two_swapped_entries_are_named(
    leaves: list[bytes], heads_every_append: list[str], i: int, j: int
) -> None:
    swapped = [*leaves]
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert_first_bad(verify_log(swapped, heads_every_append, VKEY), i, swapped)
    report = verify_log(
        swapped, heads_every_append[-1:], VKEY, stored_leaf_hashes=leaf_hashes(leaves)
    )
    assert_first_bad(report, i, swapped)
    # Rows swapped with their stored indices: listed by index, they come out of order.
    indices = list(range(len(leaves)))
    indices[i], indices[j] = indices[j], indices[i]
    assert_first_bad(
        verify_log(swapped, heads_every_append[-1:], VKEY, indices=indices), i, swapped
    )


def test_a_forged_or_foreign_head_fails_without_blaming_an_entry(leaves: list[bytes]) -> None:
    forger = Ed25519PrivateKey.generate()
    tree = MerkleTree(leaf_hashes(leaves))
    forged = sign_checkpoint(forger, ORIGIN, len(leaves), tree.root())
    report = verify_log(leaves, [forged], VKEY)
    assert not report.ok
    assert report.problems[0].code == "tree_head_invalid"
    assert report.first_bad_index is None


def test_two_signed_histories_are_reported(leaves: list[bytes]) -> None:
    tree = MerkleTree(leaf_hashes(leaves))
    other_history = sign_checkpoint(KEY, ORIGIN, 10, tree.root(11))  # signed, but not this log
    heads = [other_history, sign_checkpoint(KEY, ORIGIN, len(leaves), tree.root())]
    report = verify_log(leaves, heads, VKEY)
    assert not report.ok
    assert [p.code for p in report.problems] == ["tree_head_inconsistent"]
    assert report.first_bad_index is None


def test_an_edited_stored_hash_is_named_even_when_the_entries_are_intact(
    leaves: list[bytes], heads_every_append: list[str]
) -> None:
    stored = leaf_hashes(leaves)
    stored[7] = leaf_hash(b"edited")
    report = verify_log(leaves, heads_every_append, VKEY, stored_leaf_hashes=stored)
    assert_first_bad(report, 7, leaves)
    assert [p.code for p in report.problems] == ["leaf_changed"]


def test_a_duplicated_event_is_named(leaves: list[bytes]) -> None:
    ids = [event_id(leaf) for leaf in leaves]
    ids[12] = ids[3]
    report = verify_log(leaves, heads_at(leaves, [len(leaves)]), VKEY, event_ids=ids)
    assert report.first_bad_index == 12
    assert report.problems[0].code == "duplicate_event"


def test_no_heads_means_nothing_is_vouched_for(leaves: list[bytes]) -> None:
    report = verify_log(leaves, [], VKEY)
    assert report.ok
    assert report.verified_size == 0 and report.unsigned_entries == len(leaves)


def test_an_edited_custody_record_is_named_against_the_stored_leaves(
    events: list[CustodyEvent], leaves: list[bytes], heads_every_append: list[str]
) -> None:
    assert verify_log(leaves, heads_every_append, VKEY, records=events).ok
    records = [*events]
    records[9] = dataclasses.replace(records[9], to_user="officer.nobody")
    report = verify_log(leaves, heads_every_append, VKEY, records=records)
    assert_first_bad(report, 9, leaves)
    assert [p.code for p in report.problems] == ["record_changed"]
