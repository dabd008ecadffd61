"""Envelope encryption of personal fields: round trips, binding, tampering, rotation."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_shared.security.crypto import (
    DecryptionError,
    FieldCipher,
    KeyConfigurationError,
    Keyring,
    KeyringSettings,
    MalformedCiphertextError,
    UnknownMasterKeyError,
    field_context,
    generate_key,
    rewrap_column,
)

K1, K2 = os.urandom(32), os.urandom(32)
CTX = field_context("child", "personal_details", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip_and_randomised() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    for text in ("Sok Dara", "សុខ ដារា", "", "x" * 10_000):
        token = cipher.encrypt(text, context=CTX)
        assert cipher.decrypt(token, context=CTX) == text
        assert text not in token or text == ""
    a, b = cipher.encrypt("Sok Dara", context=CTX), cipher.encrypt("Sok Dara", context=CTX)
    assert a != b  # fresh data key and nonce each time
    assert a.startswith("enc1.k1.")


def test_json_round_trip() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    details = {"given_name": "Dara", "name_km": "ដារា", "date_of_birth": "2014-03-02", "n": [1, 2]}
    token = cipher.encrypt_json(details, context=CTX)
    assert cipher.decrypt_json(token, context=CTX) == details


def test_length_is_padded() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    assert len(cipher.encrypt("Sok", context=CTX)) == len(
        cipher.encrypt("Sok Dara Chan", context=CTX)
    )


def test_wrong_context_fails() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    token = cipher.encrypt("Sok Dara", context=CTX)
    for other in (
        field_context("child", "personal_details", "another-child"),
        field_context("child", "narrative", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a"),
        field_context("reporter", "personal_details", "0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a"),
    ):
        with pytest.raises(DecryptionError):
            cipher.decrypt(token, context=other)


def test_tampering_fails() -> None:
    cipher = FieldCipher({"k1": K1, "k2": K2}, "k1")
    token = cipher.encrypt("Sok Dara", context=CTX)
    prefix, kid, wrapped, nonce, ciphertext = token.split(".")

    def flip(part: str) -> str:
        raw = bytearray(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        raw[len(raw) // 2] ^= 0x01
        return b64(bytes(raw))

    for bad in (
        f"{prefix}.{kid}.{wrapped}.{nonce}.{flip(ciphertext)}",
        f"{prefix}.{kid}.{wrapped}.{flip(nonce)}.{ciphertext}",
        f"{prefix}.{kid}.{flip(wrapped)}.{nonce}.{ciphertext}",
        f"{prefix}.k2.{wrapped}.{nonce}.{ciphertext}",  # claims another master key
    ):
        with pytest.raises(DecryptionError):
            cipher.decrypt(bad, context=CTX)
    # Swapping the wrapped key of another token in fails too.
    other = cipher.encrypt("Chan Sophal", context=CTX).split(".")[2]
    with pytest.raises(DecryptionError):
        cipher.decrypt(f"{prefix}.{kid}.{other}.{nonce}.{ciphertext}", context=CTX)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plaintext name",
        "enc2.k1.a.b.c",
        "enc1.k1.a.b",
        "enc1.k 1.aaaa.bbbb.cccc",
        "enc1.k1.AA==.AA.AA",
        "enc1.k1.!!!.aa.bb",
    ],
)
def test_malformed_tokens_are_refused(bad: str) -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    with pytest.raises(MalformedCiphertextError):
        cipher.decrypt(bad, context=CTX)


def test_rotation() -> None:
    old = FieldCipher({"k1": K1}, "k1")
    token = old.encrypt("Sok Dara", context=CTX)

    rotating = FieldCipher({"k1": K1, "k2": K2}, "k2")
    assert rotating.decrypt(token, context=CTX) == "Sok Dara"  # retired key still decrypts
    assert rotating.needs_rewrap(token)
    moved = rotating.rewrap(token)
    assert FieldCipher.key_id_of(moved) == "k2"
    assert not rotating.needs_rewrap(moved)
    assert rotating.rewrap(moved) == moved
    # Only the wrapped key changed: nonce and ciphertext are the same bytes.
    assert moved.split(".")[3:] == token.split(".")[3:]

    retired = FieldCipher({"k2": K2}, "k2")
    assert retired.decrypt(moved, context=CTX) == "Sok Dara"
    with pytest.raises(UnknownMasterKeyError):
        retired.decrypt(token, context=CTX)


async def test_rewrap_column_in_batches(tmp_path: Path) -> None:
    metadata = sa.MetaData()
    child = sa.Table(
        "child",
        metadata,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("personal_details", sa.Text, nullable=True),
    )
    old = FieldCipher({"k1": K1}, "k1")
    ids = [f"c{i:03d}" for i in range(23)]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'rot.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(
                child.insert(),
                [
                    {
                        "id": i,
                        "personal_details": old.encrypt(
                            f"name {i}", context=field_context("child", "personal_details", i)
                        ),
                    }
                    for i in ids
                ]
                + [{"id": "zz-null", "personal_details": None}],
            )

        rotating = FieldCipher({"k1": K1, "k2": K2}, "k2")

        def context(row: sa.RowMapping) -> str:
            return field_context("child", "personal_details", row["id"])

        assert (
            await rewrap_column(
                engine, child, "personal_details", cipher=rotating, context_fn=context, batch_size=5
            )
            == 23
        )
        assert (
            await rewrap_column(engine, child, "personal_details", cipher=rotating, batch_size=5)
            == 0
        )  # idempotent

        retired = FieldCipher({"k2": K2}, "k2")
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.select(child).where(child.c.id != "zz-null"))).all()
        for row_id, token in rows:
            assert FieldCipher.key_id_of(token) == "k2"
            assert (
                retired.decrypt(token, context=field_context("child", "personal_details", row_id))
                == f"name {row_id}"
            )

        # A ciphertext copied into another row is caught when contexts are checked.
        async with engine.begin() as conn:
            await conn.execute(
                child.update()
                .where(child.c.id == "c001")
                .values(
                    personal_details=old.encrypt(
                        "x", context=field_context("child", "personal_details", "c002")
                    )
                )
            )
        with pytest.raises(DecryptionError, match="c001"):
            await rewrap_column(
                engine, child, "personal_details", cipher=rotating, context_fn=context
            )
    finally:
        await engine.dispose()


def test_dev_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    settings = KeyringSettings(dev_keys_file=tmp_path / "var" / "dev-master-keys.json")
    first = Keyring.load(settings)
    assert first.source == "dev-file"
    assert stat.S_IMODE(settings.dev_keys_file.stat().st_mode) == 0o600
    second = Keyring.load(settings)
    assert first.master_keys == second.master_keys
    assert first.blind_index_key == second.blind_index_key
    assert len({first.master_keys["dev1"], first.blind_index_key, first.pseudonym_key}) == 3
    token = first.field_cipher().encrypt("Dara", context=CTX)
    assert second.field_cipher().decrypt(token, context=CTX) == "Dara"
    assert "dev1" in repr(first) and base64.b64encode(first.master_keys["dev1"]).decode() not in (
        repr(first)
    )


def test_environment_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    k1, k2, bi, ps = (generate_key() for _ in range(4))
    monkeypatch.setenv("CPU_CRYPTO_MASTER_KEYS", json.dumps({"k2": k2, "k1": k1}))
    monkeypatch.setenv("CPU_CRYPTO_ACTIVE_MASTER_KEY", "k2")
    monkeypatch.setenv("CPU_CRYPTO_BLIND_INDEX_KEY", bi)
    monkeypatch.setenv("CPU_CRYPTO_DEV_KEYS_FILE", str(tmp_path / "never.json"))
    keyring = Keyring.load()
    assert keyring.source == "environment"
    assert keyring.active_master_key == "k2"
    assert keyring.pseudonym_key is None  # e.g. reporting: it never gets this secret
    with pytest.raises(KeyConfigurationError, match="PSEUDONYM"):
        keyring.pseudonymizer()
    assert not (tmp_path / "never.json").exists()

    monkeypatch.setenv("CPU_CRYPTO_PSEUDONYM_KEY", bi)  # the same secret for two purposes
    with pytest.raises(KeyConfigurationError, match="differ"):
        Keyring.load()
    monkeypatch.setenv("CPU_CRYPTO_PSEUDONYM_KEY", ps)
    monkeypatch.setenv("CPU_CRYPTO_ACTIVE_MASTER_KEY", "k3")
    with pytest.raises(KeyConfigurationError, match="active"):
        Keyring.load()
    monkeypatch.setenv("CPU_CRYPTO_MASTER_KEYS", json.dumps({"k3": b64(os.urandom(16))}))
    with pytest.raises(KeyConfigurationError, match="32 bytes"):
        Keyring.load()


def test_dev_keys_can_be_disabled(tmp_path: Path) -> None:
    settings = KeyringSettings(dev_keys_file=tmp_path / "k.json", allow_dev_keys=False)
    with pytest.raises(KeyConfigurationError, match="disabled"):
        Keyring.load(settings)
    assert not (tmp_path / "k.json").exists()


def test_key_ids_differing_only_in_case_are_refused() -> None:
    with pytest.raises(KeyConfigurationError, match="case"):
        FieldCipher({"k1": K1, "K1": K2}, "k1")


def test_context_is_required() -> None:
    cipher = FieldCipher({"k1": K1}, "k1")
    with pytest.raises(ValueError):
        cipher.encrypt("Dara", context="")
    with pytest.raises(ValueError):
        field_context("child.x", "name", "1")
