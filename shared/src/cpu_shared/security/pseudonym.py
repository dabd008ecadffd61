"""Pseudonymous ids for data that leaves a service (events read by ``reporting``).

``pseudonym("child", internal_id)`` is HMAC-SHA256 under a secret key, with a separate
HKDF-derived key per kind, rendered as ``ps_`` + 26 lowercase base32 characters (130 bits).
The same input always gives the same pseudonym, so reporting can count distinct children and
follow a case across events; without the key - which reporting never has - a pseudonym cannot
be reversed or recomputed from a guessed id, and pseudonyms of different kinds for the same
id are unrelated.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cpu_shared.security.blind_index import HmacSha256

PREFIX = "ps_"
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PSEUDONYM_PATTERN = r"^ps_[a-z2-7]{26}$"


class Pseudonymizer:
    """Derives pseudonyms under ``CPU_CRYPTO_PSEUDONYM_KEY``."""

    def __init__(self, key: bytes) -> None:
        """``key``: at least 32 random bytes, shared by every service that publishes."""
        if len(key) < 32:
            raise ValueError("the pseudonym key must be at least 32 bytes")
        self._key = bytes(key)
        self._kind_keys: dict[str, HmacSha256] = {}

    def __repr__(self) -> str:
        return "Pseudonymizer(<key hidden>)"

    def _kind_key(self, kind: str) -> HmacSha256:
        mac = self._kind_keys.get(kind)
        if mac is None:
            mac = HmacSha256(
                HKDF(
                    algorithm=hashes.SHA256(),
                    length=32,
                    salt=None,
                    info=b"cpu/pseudonym/v1/" + kind.encode(),
                ).derive(self._key)
            )
            self._kind_keys[kind] = mac
        return mac

    def pseudonym(self, kind: str, internal_id: str) -> str:
        """The pseudonym of ``internal_id`` as a ``kind`` (e.g. "child", "case", "officer")."""
        mac = self._kind_keys.get(kind)
        if mac is None:  # a kind seen before was checked when its key was derived
            if not _KIND.match(kind):
                raise ValueError("kind must be a lowercase code such as 'child'")
            mac = self._kind_key(kind)
        if not internal_id:
            raise ValueError("internal_id must not be empty")
        digest = mac.digest(internal_id.encode("utf-8"))
        # The first 26 characters of the digest's lower-case base32 (RFC 4648): its first 130
        # bits, ten at a time through a table of character pairs (``base64.b32encode`` is a
        # Python loop in 3.11 and cost twice as much; equal, tested).
        bits = int.from_bytes(digest[:17], "big") >> 6
        return PREFIX + "".join([_PAIRS[(bits >> shift) & 0x3FF] for shift in _SHIFTS])


_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))
