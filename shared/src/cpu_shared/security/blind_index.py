"""Blind indexes: keyed hashes of normalised personal values, for search and duplicate
detection without decrypting anything.

A blind index is HMAC-SHA256 under a secret key, truncated to 128 bits and written as hex.
Without the key nobody can test a guess ("is this the index of 'Sok Dara'?"), which a plain
hash of a name or phone number would allow in seconds. Each kind of index (phone, full name,
name token, phonetic key) uses its own HMAC key, derived from the blind index key with HKDF
and the kind's name, so equal inputs of different kinds never produce equal indexes and one
kind cannot be joined against another.

Normalisation decides what counts as "the same": see :func:`normalise_name` and
:func:`normalise_phone`. Phonetic keys (for Latin-script names, via ``jellyfish``) make
romanisation variants such as "Sothea"/"Sotea" meet; they are deliberately coarse, so a match
on them is a *reason to look*, never proof of identity.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

import jellyfish
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INDEX_BYTES = 16  # 128 bits: collisions are not a concern at any realistic record count
_KINDS = ("phone", "name", "name_token", "name_metaphone", "name_soundex")
PhoneticScheme = Literal["metaphone", "soundex"]

# Invisible characters that change nothing a reader sees: zero-width space (Khmer text uses
# it as an optional word break), ZWNJ and ZWJ (rendering hints), word joiner and the BOM.
# Khmer vowel signs, COENG (U+17D2) and every other visible mark are kept.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LATIN_WORD = re.compile(r"^[a-z]+$")


def normalise_name(text: str) -> str:
    """The canonical form of a name: Unicode NFC, invisible joiners/spaces removed,
    case-folded, runs of whitespace collapsed to one space, trimmed.

    NFC (not NFKC/NFD-and-strip) on purpose: it makes canonically equal Khmer or Latin
    strings identical without removing anything a reader sees - Khmer vowel signs and the
    subscript mark stay, and "José" stays distinct from "Jose" (the phonetic keys, not the
    exact index, are where such variants meet).
    """
    if not isinstance(text, str):
        raise TypeError("name must be str")
    cleaned = unicodedata.normalize("NFC", text).translate(_INVISIBLE)
    # Casefold can produce decomposed sequences; normalise again so output is stable NFC.
    folded = unicodedata.normalize("NFC", cleaned.casefold())
    return " ".join(folded.split())


def normalise_phone(value: str, *, default_country_code: str | None = "855") -> str:
    """E.164 form of a phone number (``+85512345678``).

    Spaces, dashes, dots, slashes and parentheses are ignored; a leading ``00`` becomes ``+``;
    a national number starting with ``0`` gets ``default_country_code`` (Cambodia, 855) in
    place of the trunk ``0``. Anything that is then not E.164 raises ``ValueError``.
    """
    digits = _PHONE_SEPARATORS.sub("", value.strip())
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    elif digits.startswith("0") and default_country_code:
        digits = f"+{default_country_code}{digits[1:]}"
    if not _E164.match(digits):
        raise ValueError("not a phone number in E.164 form")
    return digits


def _latin_skeleton(token: str) -> str | None:
    """ASCII letters of a Latin-script token with diacritics removed, or None for any other
    script (Khmer tokens get no phonetic key: stripping marks would destroy them)."""
    decomposed = unicodedata.normalize("NFKD", token)
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    base = base.replace("'", "").replace("\u2019", "").replace("-", "")
    return base if _LATIN_WORD.match(base) else None


_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_BLOCK = 64  # SHA-256's block size


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, its inner and outer pads hashed once: each
    :meth:`digest` is two SHA-256 state copies, where ``hmac.new`` and OpenSSL 3's one-shot
    ``hmac.digest`` set the key up again for every message. Equal to ``hmac.digest(key, msg,
    "sha256")`` (tested)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __repr__(self) -> str:
        return "HmacSha256(<key hidden>)"

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class BlindIndexer:
    """Computes blind indexes under one secret key (``CPU_CRYPTO_BLIND_INDEX_KEY``)."""

    def __init__(self, key: bytes) -> None:
        """``key``: at least 32 random bytes, shared by the services that must match indexes."""
        if len(key) < 32:
            raise ValueError("the blind index key must be at least 32 bytes")
        self._root = key
        # One HKDF-derived HMAC key per kind: domain separation by key, not by message prefix.
        self._keys = {
            kind: HmacSha256(
                HKDF(
                    algorithm=hashes.SHA256(),
                    length=32,
                    salt=None,
                    info=b"cpu/blind-index/v1/" + kind.encode(),
                ).derive(key)
            )
            for kind in _KINDS
        }

    def __repr__(self) -> str:
        return "BlindIndexer(<key hidden>)"

    def _index(self, kind: str, normalised: str) -> str:
        mac = self._keys.get(kind) or self._key_for(kind)
        return mac.digest(normalised.encode("utf-8"))[:INDEX_BYTES].hex()

    def _key_for(self, kind: str) -> HmacSha256:
        mac = self._keys.get(kind)
        if mac is None:
            if not _KIND_NAME.fullmatch(kind):
                raise ValueError("an index kind is lower-case letters, digits and underscores")
            mac = HmacSha256(
                HKDF(
                    algorithm=hashes.SHA256(),
                    length=32,
                    salt=None,
                    info=b"cpu/blind-index/v1/" + kind.encode(),
                ).derive(self._root)
            )
            self._keys[kind] = mac
        return mac

    def index(self, kind: str, normalised: str) -> str:
        """Index of a value the caller has already normalised, under the key of ``kind``.

        For feature kinds a service defines itself (e.g. intake's duplicate-matching features);
        each kind gets its own HKDF-derived key, so equal values of two kinds never collide.
        """
        return self._index(kind, normalised)

    def phone(self, value: str, *, default_country_code: str | None = "855") -> str:
        """Index of a phone number, after :func:`normalise_phone`."""
        normalised = normalise_phone(value, default_country_code=default_country_code)
        return self._index("phone", normalised)

    def name(self, text: str) -> str:
        """Index of a whole name, after :func:`normalise_name`. Empty names raise ValueError."""
        normalised = normalise_name(text)
        if not normalised:
            raise ValueError("empty name")
        return self._index("name", normalised)

    def name_tokens(self, text: str) -> list[str]:
        """Indexes of each word of a name (sorted, without repeats), so "Sok Dara" and
        "Dara Sok" share all their tokens and "Sok Dara Chan" shares two."""
        return sorted({self._index("name_token", t) for t in normalise_name(text).split(" ") if t})

    def name_phonetic(self, text: str, scheme: PhoneticScheme = "metaphone") -> list[str]:
        """Indexes of a phonetic key per Latin-script word (sorted, without repeats).

        ``metaphone`` is the finer key ("Vannak"/"Vanak" meet, "Sokha"/"Sophal" do not);
        ``soundex`` is coarser and catches more romanisation variants ("Sothea"/"Sotea") at
        the price of more false candidates. Non-Latin words contribute nothing.
        """
        if scheme == "metaphone":
            encode, kind = jellyfish.metaphone, "name_metaphone"
        elif scheme == "soundex":
            encode, kind = jellyfish.soundex, "name_soundex"
        else:
            raise ValueError("scheme is 'metaphone' or 'soundex'")
        keys = set()
        for token in normalise_name(text).split(" "):
            skeleton = _latin_skeleton(token) if token else None
            if skeleton:
                code = encode(skeleton)
                if code:
                    keys.add(self._index(kind, code))
        return sorted(keys)
