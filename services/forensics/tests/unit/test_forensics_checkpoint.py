"""Signed tree heads: C2SP signed notes in checkpoint form."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cpu_forensics.domain.ledger import (
    NoteInvalid,
    checkpoint_text,
    key_id,
    open_note,
    parse_and_verify_checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_key,
)

# The signed-note test vector of golang.org/x/mod/sumdb/note (the reference implementation):
# Ed25519 is deterministic, so the same key and text must give byte-identical notes.
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnW"
    "Lox33WWd1RvMc+QQ=\n"
)

ORIGIN = "forensics.cpu.local/custody-ledger"
ROOT = hashlib.sha256(b"some root").digest()


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def vkey(key: Ed25519PrivateKey) -> str:
    return verifier_key(ORIGIN, key.public_key())


def test_matches_the_go_reference_vector() -> None:
    private = Ed25519PrivateKey.from_private_bytes(GO_SEED)
    assert verifier_key("PeterNeumann", private.public_key()) == GO_VKEY
    assert key_id("PeterNeumann", private.public_key()).hex() == "c74f20a3"
    assert sign_note(private, "PeterNeumann", GO_TEXT) == GO_TEXT + "\n" + GO_SIG
    # Another key's signature is ignored; ours verifies.
    assert open_note(GO_TEXT + "\n" + GO_SIG + GO_ENOCH_SIG, GO_VKEY) == GO_TEXT
    with pytest.raises(NoteInvalid, match="no signature by"):
        open_note(GO_TEXT + "\n" + GO_ENOCH_SIG, GO_VKEY)
    bad = GO_SIG[:60] + "ABCD" + GO_SIG[60:]
    with pytest.raises(NoteInvalid):
        open_note(GO_TEXT + "\n" + bad, GO_VKEY)


def test_checkpoint_form(key: Ed25519PrivateKey, vkey: str) -> None:
    note = sign_checkpoint(key, ORIGIN, 1234, ROOT)
    body, _, signature = note.partition("\n\n")
    assert body + "\n" == checkpoint_text(ORIGIN, 1234, ROOT)
    assert body.split("\n") == [ORIGIN, "1234", base64.b64encode(ROOT).decode()]
    assert signature.startswith(f"\u2014 {ORIGIN} ") and signature.endswith("\n")
    raw = base64.b64decode(signature.removeprefix(f"\u2014 {ORIGIN} "))
    assert len(raw) == 4 + 64
    assert (
        raw[:4]
        == hashlib.sha256(
            ORIGIN.encode() + b"\n\x01" + parse_verifier_key(vkey).public_key.public_bytes_raw()
        ).digest()[:4]
    )
    name, hex_id, encoded = vkey.split("+", 2)
    assert name == ORIGIN and hex_id == raw[:4].hex()
    assert base64.b64decode(encoded)[0] == 1 and len(base64.b64decode(encoded)) == 33


def test_round_trip(key: Ed25519PrivateKey, vkey: str) -> None:
    for size, root in ((0, hashlib.sha256(b"").digest()), (1, ROOT), (10**12, ROOT)):
        note = sign_checkpoint(key, ORIGIN, size, root)
        origin, tree_size, root_hash = parse_and_verify_checkpoint(note, vkey, origin=ORIGIN)
        assert (origin, tree_size, root_hash) == (ORIGIN, size, root)
        assert parse_and_verify_checkpoint(note.encode(), vkey).tree_size == size


def _tamper_cases(note: str) -> list[str]:
    body, _, sig = note.partition("\n\n")
    lines = body.split("\n")
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    return [
        note.replace("\n1234\n", "\n1235\n"),  # size
        "\n".join([lines[0], lines[1], other_root]) + "\n\n" + sig,  # root
        note.replace(ORIGIN, ORIGIN + "x", 1),  # origin
        note[:-3] + ("A" if note[-3] != "A" else "B") + note[-2:],  # signature byte
        note.replace("\n\n", "\n", 1),  # no blank line
        note.rstrip("\n"),  # signature line without its newline
        note + "\u2014 extra line\n",  # garbage signature line
        note.replace("\u2014", "-", 1),  # not an em dash
        body + "\nextension\n\n" + sig,  # an extension line (not signed by us either)
        note.replace("\n1234\n", "\n01234\n"),  # leading zero
        note.replace(ORIGIN, "\x01" + ORIGIN, 1),  # control character
    ]


def test_a_tampered_note_fails(key: Ed25519PrivateKey, vkey: str) -> None:
    note = sign_checkpoint(key, ORIGIN, 1234, ROOT)
    assert parse_and_verify_checkpoint(note, vkey).tree_size == 1234
    for i, tampered in enumerate(_tamper_cases(note)):
        with pytest.raises(NoteInvalid):
            parse_and_verify_checkpoint(tampered, vkey)
            pytest.fail(f"tamper case {i} verified")


def test_a_note_signed_by_another_key_or_for_another_origin_fails(vkey: str) -> None:
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(NoteInvalid):  # same name, another key: its key id differs, ignored
        parse_and_verify_checkpoint(sign_checkpoint(impostor, ORIGIN, 1, ROOT), vkey)
    key = Ed25519PrivateKey.generate()
    other_log = sign_checkpoint(key, "other.example/log", 1, ROOT, key_name=ORIGIN)
    with pytest.raises(NoteInvalid, match="origin"):
        parse_and_verify_checkpoint(
            other_log, verifier_key(ORIGIN, key.public_key()), origin=ORIGIN
        )


def test_verifier_keys_are_checked() -> None:
    parse_verifier_key(GO_VKEY)
    name, hex_id, encoded = GO_VKEY.split("+", 2)
    for bad in (
        f"{name}+{hex_id}",
        f"{name}+c74f20a4+{encoded}",  # key id does not match
        f"{name}+C74F20A3+{encoded}",  # not lower-case hex
        f"Peter+{hex_id}+{encoded}",  # name does not match the id
        f"{name}+{hex_id}+" + base64.b64encode(b"\x02" + bytes(32)).decode(),  # not Ed25519
        f"{name}+{hex_id}+{encoded[:-1]}",  # not base64
        f"Peter Neumann+{hex_id}+{encoded}",
    ):
        with pytest.raises(NoteInvalid):
            parse_verifier_key(bad)
    with pytest.raises(NoteInvalid):
        verifier_key("a+b", bytes(32))


def test_extension_lines_are_refused_even_when_signed(key: Ed25519PrivateKey, vkey: str) -> None:
    text = checkpoint_text(ORIGIN, 5, ROOT) + "an unaudited extension\n"
    with pytest.raises(NoteInvalid, match="exactly origin, size and root"):
        parse_and_verify_checkpoint(sign_note(key, ORIGIN, text), vkey)
    assert open_note(sign_note(key, ORIGIN, text), vkey) == text  # a valid note nonetheless
