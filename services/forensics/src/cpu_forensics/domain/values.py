"""Checks every value of this domain goes through: instants and free text.

* Instants must carry a time zone; they are kept in UTC. A naive datetime is refused rather than
  guessed at: an hour's error in a custody timestamp is exactly what a defence looks for.
* An instant's one spelling (for the ledger and reports) is RFC 3339 in UTC with microseconds
  and ``Z``: ``2025-03-01T08:30:00.000000Z``. Fixed width, so the same instant always gives the
  same leaf bytes, whatever the store or the client sent.
* Free text is NFC-normalised (one spelling per text, so Khmer typed on two keyboards hashes the
  same), must not be blank, and may not hold control characters (newline and tab only where a
  field allows several lines) or lone surrogates (they cannot be encoded as UTF-8, so they
  could never be canonicalised into a ledger leaf).
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta

from cpu_forensics.domain.rules import InvalidValue

# How far a claimed time may run ahead of the server's clock when it is recorded: clients'
# clocks drift, but a step dated well after it was recorded is a forgery or a typo.
CLOCK_SKEW = timedelta(minutes=5)

_MULTILINE_OK = frozenset("\n\t")


def utc(value: datetime, field: str) -> datetime:
    """``value`` in UTC; refuses a naive datetime (or anything that is not one)."""
    if not isinstance(value, datetime):
        raise InvalidValue(field, "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(field, "must carry a time zone")
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """The one RFC 3339 spelling of an aware instant: UTC, microseconds, ``Z``."""
    if value.tzinfo is not UTC:  # the domain keeps UTC already; this is the ledger's hot path
        value = utc(value, "timestamp")
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"


def text(value: object, field: str, *, max_length: int = 200, multiline: bool = False) -> str:
    """A non-blank, NFC-normalised text without control characters, at most ``max_length``."""
    if not isinstance(value, str):
        raise InvalidValue(field, "must be text")
    normal = unicodedata.normalize("NFC", value).strip()
    if not normal:
        raise InvalidValue(field, "must not be blank")
    if len(normal) > max_length:
        raise InvalidValue(field, f"must be at most {max_length} characters")
    for ch in normal:
        if (ord(ch) < 0x20 or ch == "\x7f") and not (multiline and ch in _MULTILINE_OK):
            raise InvalidValue(field, "must not contain control characters")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InvalidValue(field, "must be valid Unicode (no lone surrogates)")
    return normal


def optional_text(
    value: object, field: str, *, max_length: int = 200, multiline: bool = False
) -> str | None:
    """:func:`text`, or None for None or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return text(value, field, max_length=max_length, multiline=multiline)


def not_in_future(at: datetime, recorded_at: datetime) -> bool:
    """True when ``at`` is no later than ``recorded_at`` plus the allowed clock skew."""
    return at <= recorded_at + CLOCK_SKEW


_ID_EXTRA = frozenset("_.:@+-")


def identifier(value: object, field: str) -> str:
    """An id or user name: 1 to 128 ASCII letters, digits and ``_.:@+-``, starting alnum."""
    if not isinstance(value, str) or not value:
        raise InvalidValue(field, "must be a non-empty identifier")
    if len(value) > 128:
        raise InvalidValue(field, "must be at most 128 characters")
    if not (value[0].isascii() and value[0].isalnum()):
        raise InvalidValue(field, "must start with a letter or digit")
    for ch in value:
        if not (ch.isascii() and (ch.isalnum() or ch in _ID_EXTRA)):
            raise InvalidValue(field, f"must not contain {ch!r}")
    return value
