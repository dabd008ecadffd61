"""Envelope encryption of personal fields at rest, with master-key rotation.

Scheme
------
Every value gets its own fresh random 256-bit data key (DEK). The value is encrypted with
AES-256-GCM under the DEK with a random 96-bit nonce; the DEK is wrapped (AES-256-GCM, its own
random nonce) under the *active* master key. Because each DEK encrypts exactly one value, GCM's
nonce limits never come into play for data, and rotating a master key only means re-wrapping
48-byte DEKs (:meth:`FieldCipher.rewrap`) - no plaintext is ever re-encrypted or even seen.

Token format (a text column holds it as is)::

    enc1.<key id>.<b64url(wrap nonce || wrapped DEK || tag)>.<b64url(nonce)>.<b64url(ct || tag)>

* ``enc1`` - format version; anything else is refused, so a future format can coexist.
* The master key id travels in clear (it is not secret) and is bound as associated data of
  the wrap: editing it makes unwrapping fail.
* The value's associated data is ``"cpu-field-v1\\0" + context``. Callers pass a context naming
  the exact slot - table, column and record id (:func:`field_context`) - so a ciphertext copied
  into another row or column fails to decrypt instead of silently showing one child's details
  on another child's record.
* The plaintext is padded (ISO/IEC 7816-4) to a multiple of 32 bytes so lengths leak less.
* base64url without padding, checked to be canonical: one value has one spelling.

Why not a SQLAlchemy ``TypeDecorator``: its ``process_bind_param`` sees the value but not the
row, so it cannot bind the record id as associated data, and a cipher that binds nothing lets
ciphertexts be swapped between rows unnoticed. Services instead encrypt explicitly in their
repositories with ``field_context(table, column, record_id)``, generating record ids (UUIDs)
before the insert so the context is known. It is one explicit line per field, and it is
visible in review.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncEngine

from cpu_shared.logging import get_logger
from cpu_shared.security._files import read_or_create_private_file

log = get_logger(__name__)

FORMAT = "enc1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
PAD_BLOCK = 32
_WRAPPED_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_DATA_AAD = b"cpu-field-v1\x00"
_WRAP_AAD = b"cpu-dek-v1\x00"
MAX_CONTEXT_CHARS = 512


class CryptoError(Exception):
    """Base of the errors below. Messages never include key material or plaintext."""


class KeyConfigurationError(CryptoError):
    """Keys are missing, malformed or inconsistent."""


class MalformedCiphertextError(CryptoError):
    """The value is not an ``enc1`` token (or not a well-formed one)."""


class UnknownMasterKeyError(CryptoError):
    """The token was wrapped under a master key that is no longer configured."""


class DecryptionError(CryptoError):
    """Authentication failed: wrong context, tampered token, or wrong key."""


# -- settings and keyring ------------------------------------------------------------------


class KeyringSettings(BaseSettings):
    """Encryption secrets, from ``CPU_CRYPTO_*`` environment variables.

    ``CPU_CRYPTO_MASTER_KEYS='{"k2": "<base64 32 bytes>", "k1": "<base64 32 bytes>"}'`` with
    ``CPU_CRYPTO_ACTIVE_MASTER_KEY=k2``; ``CPU_CRYPTO_BLIND_INDEX_KEY`` and
    ``CPU_CRYPTO_PSEUDONYM_KEY`` are separate secrets (base64, at least 32 bytes). When none of
    them is set, local runs use ``./var/dev-master-keys.json`` (created with mode 0600);
    production sets ``CPU_CRYPTO_ALLOW_DEV_KEYS=false`` so that a forgotten variable stops the
    service instead of encrypting children's data under a key lying on local disk.
    """

    model_config = SettingsConfigDict(env_prefix="CPU_CRYPTO_", extra="ignore")

    master_keys: dict[str, SecretStr] = Field(default_factory=dict)
    active_master_key: str | None = None
    blind_index_key: SecretStr | None = None
    pseudonym_key: SecretStr | None = None
    dev_keys_file: Path = Path("./var/dev-master-keys.json")
    allow_dev_keys: bool = True


def generate_key() -> str:
    """A new random 256-bit key, base64 - the format the settings take."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def _decode_key(value: str, name: str, *, exact: bool) -> bytes:
    text = value.strip()
    try:
        if "-" in text or "_" in text:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        else:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigurationError(f"{name} is not valid base64") from None
    if exact and len(raw) != KEY_BYTES:
        raise KeyConfigurationError(f"{name} must be exactly {KEY_BYTES} bytes")
    if len(raw) < KEY_BYTES:
        raise KeyConfigurationError(f"{name} must be at least {KEY_BYTES} bytes")
    return raw


def _new_dev_keys() -> bytes:
    document = {
        "comment": "LOCAL DEVELOPMENT KEYS ONLY. Never use in production; "
        "set CPU_CRYPTO_* from a secret store there.",
        "master_keys": {"dev1": generate_key()},
        "active_master_key": "dev1",
        # Independent random secrets, not derived from one another: leaking one reveals
        # nothing about the others.
        "blind_index_key": generate_key(),
        "pseudonym_key": generate_key(),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


@dataclass(frozen=True)
class Keyring:
    """The secrets of one service process, decoded and checked."""

    master_keys: Mapping[str, bytes]
    active_master_key: str
    blind_index_key: bytes | None
    pseudonym_key: bytes | None
    source: Literal["environment", "dev-file"]

    @classmethod
    def load(cls, settings: KeyringSettings | None = None) -> Keyring:
        """Keys from the environment, else (if allowed) from the dev key file.

        A service that does not need a secret simply does not get it: ``reporting`` must run
        without ``CPU_CRYPTO_PSEUDONYM_KEY`` so it can never recompute a pseudonym.
        """
        settings = settings or KeyringSettings()
        configured = (
            bool(settings.master_keys)
            or settings.blind_index_key is not None
            or (settings.pseudonym_key is not None)
        )
        if configured:
            if not settings.master_keys:
                raise KeyConfigurationError(
                    "CPU_CRYPTO_MASTER_KEYS is required when any CPU_CRYPTO_* key is set"
                )
            masters = {
                kid: _decode_key(v.get_secret_value(), f"master key {kid!r}", exact=True)
                for kid, v in settings.master_keys.items()
            }
            blind = (
                _decode_key(
                    settings.blind_index_key.get_secret_value(),
                    "CPU_CRYPTO_BLIND_INDEX_KEY",
                    exact=False,
                )
                if settings.blind_index_key
                else None
            )
            pseudo = (
                _decode_key(
                    settings.pseudonym_key.get_secret_value(),
                    "CPU_CRYPTO_PSEUDONYM_KEY",
                    exact=False,
                )
                if settings.pseudonym_key
                else None
            )
            active = settings.active_master_key or (
                next(iter(masters)) if len(masters) == 1 else None
            )
            source: Literal["environment", "dev-file"] = "environment"
        else:
            if not settings.allow_dev_keys:
                raise KeyConfigurationError(
                    "no CPU_CRYPTO_MASTER_KEYS configured and dev keys are disabled"
                )
            raw = read_or_create_private_file(settings.dev_keys_file, _new_dev_keys)
            try:
                doc = json.loads(raw)
                masters = {
                    kid: _decode_key(v, f"dev master key {kid!r}", exact=True)
                    for kid, v in doc["master_keys"].items()
                }
                blind = _decode_key(doc["blind_index_key"], "dev blind index key", exact=False)
                pseudo = _decode_key(doc["pseudonym_key"], "dev pseudonym key", exact=False)
                active = settings.active_master_key or doc.get("active_master_key")
            except (ValueError, KeyError, TypeError, AttributeError):
                raise KeyConfigurationError(
                    f"{settings.dev_keys_file} is not a valid dev key file"
                ) from None
            source = "dev-file"
            log.warning(
                "field encryption uses local development keys", file=str(settings.dev_keys_file)
            )
        if active is None:
            raise KeyConfigurationError(
                "CPU_CRYPTO_ACTIVE_MASTER_KEY must name one of the master keys"
            )
        keyring = cls(
            master_keys=masters,
            active_master_key=active,
            blind_index_key=blind,
            pseudonym_key=pseudo,
            source=source,
        )
        keyring._check()
        return keyring

    def _check(self) -> None:
        for kid in self.master_keys:
            if not _KEY_ID.match(kid):
                raise KeyConfigurationError("master key ids are 1-32 characters of A-Z a-z 0-9 _ -")
        if self.active_master_key not in self.master_keys:
            raise KeyConfigurationError("the active master key id is not among the master keys")
        # One secret, one purpose: a reused secret would let one compromise cover two uses.
        secrets_in_use = [*self.master_keys.values(), self.blind_index_key, self.pseudonym_key]
        present = [s for s in secrets_in_use if s is not None]
        if len(set(present)) != len(present):
            raise KeyConfigurationError("master, blind index and pseudonym keys must all differ")

    def field_cipher(self) -> FieldCipher:
        """A :class:`FieldCipher` over these master keys."""
        return FieldCipher(self.master_keys, self.active_master_key)

    def blind_indexer(self) -> Any:
        """A :class:`~cpu_shared.security.blind_index.BlindIndexer` (needs the blind index key)."""
        from cpu_shared.security.blind_index import BlindIndexer

        if self.blind_index_key is None:
            raise KeyConfigurationError("CPU_CRYPTO_BLIND_INDEX_KEY is not configured")
        return BlindIndexer(self.blind_index_key)

    def pseudonymizer(self) -> Any:
        """A :class:`~cpu_shared.security.pseudonym.Pseudonymizer` (needs the pseudonym key)."""
        from cpu_shared.security.pseudonym import Pseudonymizer

        if self.pseudonym_key is None:
            raise KeyConfigurationError("CPU_CRYPTO_PSEUDONYM_KEY is not configured")
        return Pseudonymizer(self.pseudonym_key)

    def __repr__(self) -> str:  # never print key bytes
        return (
            f"Keyring(master_keys={sorted(self.master_keys)}, "
            f"active_master_key={self.active_master_key!r}, source={self.source!r})"
        )


# -- the cipher ----------------------------------------------------------------------------


def field_context(table: str, column: str, record_id: str) -> str:
    """The associated-data context for one field of one row: ``"table.column#record_id"``.

    ``table`` and ``column`` are SQL identifiers (no ``.`` or ``#``), so the string parses one
    way only and two different slots can never share a context.
    """
    slot = _slot(table, column)
    if not record_id or len(record_id) > 200:
        raise ValueError("record_id must be 1-200 characters")
    return slot + record_id


@functools.lru_cache(maxsize=1024)
def _slot(table: str, column: str) -> str:
    # Checked once per column: a service seals the same few columns over and over.
    if not _IDENT.match(table) or not _IDENT.match(column):
        raise ValueError("table and column must be lowercase SQL identifiers")
    return f"{table}.{column}#"


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    if not _B64URL.match(text):
        raise MalformedCiphertextError("token is not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise MalformedCiphertextError("token is not base64url") from None
    if _b64e(raw) != text:  # one value, one spelling
        raise MalformedCiphertextError("token is not canonical base64url")
    return raw


def _pad(data: bytes) -> bytes:
    padded = data + b"\x80"
    return padded + b"\x00" * (-len(padded) % PAD_BLOCK)


def _unpad(data: bytes) -> bytes:
    # Runs only after GCM authenticated the plaintext, so it is no padding oracle.
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80"):
        raise DecryptionError("bad padding")
    return stripped[:-1]


def _context_aad(context: str) -> bytes:
    if not isinstance(context, str) or not context or len(context) > MAX_CONTEXT_CHARS:
        raise ValueError(f"context must be a non-empty string of at most {MAX_CONTEXT_CHARS} chars")
    return _DATA_AAD + context.encode("utf-8")


@dataclass(frozen=True)
class _Token:
    key_id: str
    wrapped: bytes
    nonce: bytes
    ciphertext: bytes

    @classmethod
    def parse(cls, token: str) -> _Token:
        if not isinstance(token, str):
            raise MalformedCiphertextError("token must be a string")
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != FORMAT:
            raise MalformedCiphertextError("not an enc1 token")
        _, key_id, wrapped_b64, nonce_b64, ct_b64 = parts
        if not _KEY_ID.match(key_id):
            raise MalformedCiphertextError("bad master key id")
        wrapped, nonce, ciphertext = _b64d(wrapped_b64), _b64d(nonce_b64), _b64d(ct_b64)
        if (
            len(wrapped) != _WRAPPED_BYTES
            or len(nonce) != NONCE_BYTES
            or len(ciphertext) < (TAG_BYTES + PAD_BLOCK)
        ):
            raise MalformedCiphertextError("token parts have the wrong length")
        return cls(key_id, wrapped, nonce, ciphertext)

    def render(self) -> str:
        return ".".join(
            (FORMAT, self.key_id, _b64e(self.wrapped), _b64e(self.nonce), _b64e(self.ciphertext))
        )


class FieldCipher:
    """Encrypts and decrypts personal fields; see the module docstring for the format."""

    def __init__(self, master_keys: Mapping[str, bytes], active_key_id: str) -> None:
        """``master_keys`` maps key id -> 32 raw bytes; new values wrap under ``active_key_id``.
        Retired keys stay in the mapping until every token has been re-wrapped."""
        for kid, key in master_keys.items():
            if not _KEY_ID.match(kid):
                raise KeyConfigurationError("master key ids are 1-32 of A-Z a-z 0-9 _ -")
            if len(key) != KEY_BYTES:
                raise KeyConfigurationError(f"master key {kid!r} must be {KEY_BYTES} bytes")
        if active_key_id not in master_keys:
            raise KeyConfigurationError("the active master key id is not among the master keys")
        if len({kid.lower() for kid in master_keys}) != len(master_keys):
            # rewrap_column filters with LIKE, which SQLite compares case-insensitively: ids
            # differing only in case could hide tokens from a rotation.
            raise KeyConfigurationError("master key ids must differ by more than letter case")
        self._masters = {kid: AESGCM(bytes(key)) for kid, key in master_keys.items()}
        self._active = active_key_id
        self._active_master = self._masters[active_key_id]
        self._active_wrap_aad = _WRAP_AAD + active_key_id.encode()

    @classmethod
    def from_settings(cls, settings: KeyringSettings | None = None) -> FieldCipher:
        """Build from ``CPU_CRYPTO_*`` (or the dev key file)."""
        return Keyring.load(settings).field_cipher()

    @property
    def active_key_id(self) -> str:
        """The master key new values are wrapped under."""
        return self._active

    def __repr__(self) -> str:
        return f"FieldCipher(keys={sorted(self._masters)}, active={self._active!r})"

    # wrapping

    def _wrap(self, dek: bytes, key_id: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._masters[key_id].encrypt(nonce, dek, _WRAP_AAD + key_id.encode())

    def _unwrap(self, parsed: _Token) -> bytes:
        master = self._masters.get(parsed.key_id)
        if master is None:
            raise UnknownMasterKeyError(f"master key {parsed.key_id!r} is not configured")
        nonce, body = parsed.wrapped[:NONCE_BYTES], parsed.wrapped[NONCE_BYTES:]
        try:
            return master.decrypt(nonce, body, _WRAP_AAD + parsed.key_id.encode())
        except InvalidTag:
            raise DecryptionError("data key does not unwrap (tampered or wrong key)") from None

    # values

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Encrypt ``plaintext`` for the slot named by ``context`` (see :func:`field_context`)."""
        if not isinstance(plaintext, str):
            raise TypeError("plaintext must be str; use encrypt_json for structured values")
        aad = _context_aad(context)
        # The data key and both nonces from one read of the OS's random source.
        random = os.urandom(KEY_BYTES + 2 * NONCE_BYTES)
        dek, nonce, wrap_nonce = (
            random[:KEY_BYTES],
            random[KEY_BYTES : KEY_BYTES + NONCE_BYTES],
            random[KEY_BYTES + NONCE_BYTES :],
        )
        ciphertext = AESGCM(dek).encrypt(nonce, _pad(plaintext.encode("utf-8")), aad)
        wrapped = wrap_nonce + self._active_master.encrypt(wrap_nonce, dek, self._active_wrap_aad)
        return f"{FORMAT}.{self._active}.{_b64e(wrapped)}.{_b64e(nonce)}.{_b64e(ciphertext)}"

    def decrypt(self, token: str, *, context: str) -> str:
        """Decrypt a token made for the same ``context``; any mismatch raises a CryptoError."""
        aad = _context_aad(context)
        parsed = _Token.parse(token)
        dek = self._unwrap(parsed)
        try:
            padded = AESGCM(dek).decrypt(parsed.nonce, parsed.ciphertext, aad)
        except InvalidTag:
            raise DecryptionError(
                "value does not authenticate (wrong context or tampered)"
            ) from None
        return _unpad(padded).decode("utf-8")

    def encrypt_json(self, value: Any, *, context: str) -> str:
        """Encrypt a JSON-serialisable value (e.g. a child's personal details)."""
        text = json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
        )
        return self.encrypt(text, context=context)

    def decrypt_json(self, token: str, *, context: str) -> Any:
        """Decrypt what :meth:`encrypt_json` produced."""
        return json.loads(self.decrypt(token, context=context))

    # rotation

    @staticmethod
    def key_id_of(token: str) -> str:
        """The id of the master key a token's data key is wrapped under."""
        return _Token.parse(token).key_id

    def needs_rewrap(self, token: str) -> bool:
        """True when the token is wrapped under a key other than the active one."""
        return _Token.parse(token).key_id != self._active

    def rewrap(self, token: str) -> str:
        """Re-wrap the token's data key under the active master key.

        The value's ciphertext, nonce and context binding are untouched, so this needs no
        context and never sees plaintext. A token already under the active key comes back
        unchanged.
        """
        parsed = _Token.parse(token)
        if parsed.key_id == self._active:
            return token
        dek = self._unwrap(parsed)
        return _Token(
            self._active, self._wrap(dek, self._active), parsed.nonce, parsed.ciphertext
        ).render()


async def rewrap_column(
    engine: AsyncEngine,
    table: sa.Table | Any,
    column: str,
    *,
    cipher: FieldCipher,
    context_fn: Callable[[sa.RowMapping], str] | None = None,
    batch_size: int = 500,
) -> int:
    """Re-wrap every token of ``table.column`` not yet under the active master key.

    For ``cpu keys rotate``: walks the table in primary-key order, ``batch_size`` rows per
    transaction, so locks are held briefly and the service keeps serving. Each row is updated
    only if the column still holds the token that was read (a concurrent write already used
    the active key, and wins). Safe to interrupt and run again. Returns the number of values
    re-wrapped.

    ``table`` is a ``sa.Table`` or an ORM/SQLModel class (its ``__table__``) with a one-column
    primary key. ``context_fn(row)`` - the row as a mapping of column name to value - may
    return each value's context: the value is then fully decrypted first, so a swapped or
    corrupt ciphertext stops the run (with its row id) instead of being carried forward.

    It takes the engine rather than one session because every batch needs its own short
    transaction.
    """
    table = getattr(table, "__table__", table)
    if len(table.primary_key.columns) != 1:
        raise ValueError("rewrap_column needs a table with a one-column primary key")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    pk = next(iter(table.primary_key.columns))
    col = table.c[column]
    active_prefix = f"{FORMAT}.{cipher.active_key_id}."
    last_pk: Any = None
    rewrapped = 0
    while True:
        async with engine.begin() as conn:
            stmt = sa.select(table).where(
                col.is_not(None), sa.not_(col.startswith(active_prefix, autoescape=True))
            )
            if last_pk is not None:
                stmt = stmt.where(pk > last_pk)
            rows = (await conn.execute(stmt.order_by(pk).limit(batch_size))).mappings().all()
            if not rows:
                break
            for row in rows:
                token = row[col.name]
                try:
                    if context_fn is not None:
                        cipher.decrypt(token, context=context_fn(row))
                    new_token = cipher.rewrap(token)
                except CryptoError as exc:
                    raise type(exc)(f"{table.name}.{column} row {row[pk.name]!r}: {exc}") from None
                if new_token == token:
                    continue
                result = await conn.execute(
                    sa.update(table)
                    .where(pk == row[pk.name], col == token)
                    .values({col.name: new_token})
                )
                rewrapped += result.rowcount or 0
            last_pk = rows[-1][pk.name]
    log.info(
        "column re-wrapped",
        table=table.name,
        column=column,
        values=rewrapped,
        active_key=cipher.active_key_id,
    )
    return rewrapped
