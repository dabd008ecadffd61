"""The custody ledger as a partner sees it: a forensics service process on real PostgreSQL and
the real broker, checked by a verifier written here from CONTRACT.md section 7 alone (no code
of the service is imported): leaf hashes, the root, inclusion and consistency proofs, and the
checkpoint signature against ``/public-key``. Every signed tree head also reaches
``forensics.evidence.events``, where another party can hold it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cpu_platform.devstack.kafka import ensure_topics, free_port
from cpu_platform.testing.kafka_tools import bearer, read_all
from cpu_platform.testing.processes import ServiceProcess
from cpu_shared.messaging.topics import all_topic_names

pytestmark = pytest.mark.e2e

EVIDENCE_TOPIC = "forensics.evidence.events"


# --- an independent verifier: CONTRACT.md section 7, RFC 9162 2.1, C2SP signed notes ---------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 over leaf hashes."""
    n = len(hashes)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def verify_inclusion(hashed: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, hashed
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2 (0 < first < second)."""
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def open_checkpoint(note: str, vkey: str) -> tuple[str, int, bytes]:
    """Check a C2SP signed checkpoint against a verifier key; (origin, size, root)."""
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    key = b64(key_b64)
    assert key[0] == 1 and len(key) == 33, "an Ed25519 verifier key"
    assert sha256(name.encode() + b"\n" + key)[:4].hex() == key_id_hex
    body, _, signatures = note.partition("\n\n")
    body += "\n"
    for line in signatures.rstrip("\n").split("\n"):
        assert line.startswith("\u2014 ")
        signer, _, sig_b64 = line[2:].partition(" ")
        raw = b64(sig_b64)
        if signer == name and raw[:4].hex() == key_id_hex:
            try:
                Ed25519PublicKey.from_public_bytes(key[1:]).verify(raw[4:], body.encode())
            except InvalidSignature:
                raise AssertionError("the checkpoint's signature does not verify") from None
            origin, size, root = body.rstrip("\n").split("\n")
            return origin, int(size), b64(root)
    raise AssertionError("no signature by the published key")


# --- the service under test ----------------------------------------------------------------


@pytest.fixture
def forensics_service(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str], tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """A forensics process with a ledger origin of its own; (base URL, origin)."""
    ensure_topics(kafka_bootstrap_servers, all_topic_names())
    origin = f"e2e-{uuid.uuid4().hex[:10]}.cpu.local/custody-ledger"
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "FORENSICS_PORT": str(port),
        "FORENSICS_DATABASE_URL": make_database("forensics"),
        "FORENSICS_LEDGER_ORIGIN": origin,
        "FORENSICS_LEDGER_SIGNING_KEY_FILE": str(tmp_path / "ledger-key.pem"),
    }
    proc = ServiceProcess("cpu_forensics.app", env, tmp_path / "forensics.log", port)
    proc.start(timeout=180)
    try:
        yield proc.url, origin
    finally:
        try:
            proc.terminate(timeout=60)
        finally:
            proc.kill()


def officer(user: str) -> dict[str, str]:
    return bearer("forensic_officer", user=user, teams=["FST"])


def record_some_custody(client: httpx.Client, count: int) -> list[str]:
    """``count`` items, each registered then handed over and accepted: 2 entries each."""
    items = []
    now = datetime.now(UTC)
    for n in range(count):
        item = client.post(
            "/api/v1/evidence",
            json={
                "case_id": str(uuid.uuid4()),
                "type": "digital_device",
                "description": f"Phone number {n} seized from the suspect, screen cracked",
                "collected_at": (now - timedelta(hours=3)).isoformat(),
                "collected_location": "Suspect's room, Chbar Ampov",
                "seal_number": f"SEAL-E2E-{n:04d}",
                "storage_location": "FST store, digital safe",
                "hashes": {"sha256": hashlib.sha256(f"image {n}".encode()).hexdigest()},
                "acquisition_tool": "Cellebrite UFED 7.60",
            },
            headers=officer("fo.dara"),
        )
        assert item.status_code == 201, item.text
        transfer = client.post(
            f"/api/v1/evidence/{item.json()['id']}/transfers",
            json={
                "kind": "sent_to_lab",
                "to_user": "lab.vanna",
                "purpose": "Logical extraction",
                "location": "National lab, digital unit",
            },
            headers=officer("fo.dara"),
        )
        assert transfer.status_code == 201, transfer.text
        accepted = client.post(
            f"/api/v1/evidence/{item.json()['id']}/transfers/{transfer.json()['id']}/accept",
            headers=officer("lab.vanna"),
        )
        assert accepted.status_code == 200, accepted.text
        items.append(item.json()["id"])
    return items


def test_the_ledger_verifies_with_section_7_alone(forensics_service: tuple[str, str]) -> None:
    url, origin = forensics_service
    auditor = bearer("auditor", user="aud.partner")
    with httpx.Client(base_url=url, timeout=60) as client:
        record_some_custody(client, 3)
        old_head = client.get("/api/v1/ledger/tree-head", headers=auditor).json()
        record_some_custody(client, 4)

        vkey = client.get("/api/v1/ledger/public-key", headers=auditor).json()["public_key"]
        head = client.get("/api/v1/ledger/tree-head", headers=auditor).json()
        size = head["tree_size"]
        assert size == 14 and old_head["tree_size"] == 6

        # The signed checkpoint is the tree head, under the published key.
        assert open_checkpoint(head["checkpoint"], vkey) == (origin, size, b64(head["root_hash"]))
        assert open_checkpoint(old_head["checkpoint"], vkey)[1:] == (
            6,
            b64(old_head["root_hash"]),
        )

        # Every entry: its leaf is canonical JSON of the event, and the tree of all leaf
        # hashes has the signed root.
        entries: list[dict[str, Any]] = []
        while len(entries) < size:
            page = client.get(
                f"/api/v1/ledger/entries?start={len(entries)}&end={size}", headers=auditor
            ).json()["entries"]
            assert page, "the log ended early"
            entries += page
        assert [e["index"] for e in entries] == list(range(size))
        hashes = []
        for entry in entries:
            leaf = b64(entry["leaf"])
            document = json.loads(leaf)
            canonical = json.dumps(
                document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
            assert leaf == canonical  # RFC 8785 for a document of strings, ints and nulls
            assert document["event_id"] == entry["event_id"]
            assert document["item_id"] == entry["item_id"]
            hashes.append(leaf_hash(leaf))
        assert mth(hashes) == b64(head["root_hash"])
        assert mth(hashes[:6]) == b64(old_head["root_hash"])

        # Inclusion of every entry in the latest head; consistency of the older head with it.
        for entry in entries:
            proof = client.get(
                f"/api/v1/ledger/proofs/inclusion?index={entry['index']}&tree_size={size}",
                headers=auditor,
            ).json()
            path = [b64(p) for p in proof["path"]]
            assert verify_inclusion(
                hashes[entry["index"]], entry["index"], size, path, b64(head["root_hash"])
            ), entry["index"]
            assert not verify_inclusion(
                sha256(b"forged"), entry["index"], size, path, b64(head["root_hash"])
            )
        proof = client.get(
            f"/api/v1/ledger/proofs/consistency?first=6&second={size}", headers=auditor
        ).json()
        assert (proof["first"], proof["second"]) == (6, size)
        path = [b64(p) for p in proof["path"]]
        assert verify_consistency(6, size, b64(old_head["root_hash"]), b64(head["root_hash"]), path)
        assert not verify_consistency(
            6, size, sha256(b"another history"), b64(head["root_hash"]), path
        )

        report = client.get("/api/v1/ledger/verify", headers=auditor).json()
        assert report["ok"] is True and report["tree_size"] == size


def test_every_signed_tree_head_is_published_on_the_broker(
    forensics_service: tuple[str, str], kafka_bootstrap_servers: str
) -> None:
    url, origin = forensics_service
    auditor = bearer("auditor", user="aud.partner")
    with httpx.Client(base_url=url, timeout=60) as client:
        record_some_custody(client, 2)
        vkey = client.get("/api/v1/ledger/public-key", headers=auditor).json()["public_key"]
        latest = client.get("/api/v1/ledger/tree-head", headers=auditor).json()

    heads: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 120
    while len(heads) < 4 and time.monotonic() < deadline:
        for record in asyncio.run(read_all(kafka_bootstrap_servers, EVIDENCE_TOPIC)):
            envelope = json.loads(record.value)
            if envelope["event_type"] != "ledger.tree_head_signed":
                continue
            if envelope["aggregate_id"] != origin:
                continue  # another test's (or the stack's) ledger
            assert record.key == origin.encode()
            heads[envelope["data"]["tree_size"]] = envelope
        if len(heads) < 4:
            time.sleep(1)
    assert sorted(heads) == [1, 2, 3, 4]
    for size, envelope in heads.items():
        data = envelope["data"]
        assert envelope["source"] == "forensics" and envelope["aggregate_version"] == size
        assert open_checkpoint(data["checkpoint"], vkey) == (origin, size, b64(data["root_hash"]))
    assert heads[4]["data"]["checkpoint"] == latest["checkpoint"]
    # Heads carry sizes and hashes, nothing of the leaves.
    assert "Phone number" not in json.dumps([h["data"] for h in heads.values()])
