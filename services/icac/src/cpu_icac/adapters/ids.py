"""Record ids: UUIDv7 (RFC 9562), time-ordered, made before the insert.

Time order matters beyond indexes: a subject cluster's id is its smallest tip id
(:mod:`cpu_icac.domain.linking`), which with these ids is its oldest tip. Within one process
ids are strictly increasing (a 12-bit counter within a millisecond, then the clock is borrowed
from); across processes they are ordered to the millisecond.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0

# Random bits come from the operating system's CSPRNG (os.urandom), drawn 4 KiB at a time
# rather than with one system call per id; a forked child starts with a fresh pool.
_POOL_BYTES = 4096
_pool = b""
_at = 0


def _reset_pool() -> None:
    global _pool, _at
    _pool, _at = b"", 0


os.register_at_fork(after_in_child=_reset_pool)


def _random(n: int) -> bytes:
    """``n`` bytes from the pool (call with ``_lock`` held)."""
    global _pool, _at
    if _at + n > len(_pool):
        _pool, _at = os.urandom(_POOL_BYTES), 0
    out = _pool[_at : _at + n]
    _at += n
    return out


def uuid7() -> uuid.UUID:
    """A new UUIDv7."""
    global _last_ms, _seq
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _seq += 1
            if _seq > 0xFFF:
                ms += 1
                _seq = 0
        else:
            _seq = 0
        _last_ms = ms
        seq = _seq
        rand = int.from_bytes(_random(8)) >> 2  # 62 bits
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62
    return _uuid(value | rand)


# Version 4, variant RFC 4122: the bits ``uuid.UUID(bytes=..., version=4)`` sets and clears.
_V4_CLEAR = ~(0xC000 << 48 | 0xF000 << 64)
_V4_SET = 0x8000 << 48 | 4 << 76


def uuid4() -> uuid.UUID:
    """A random UUID (version 4), as ``uuid.uuid4()`` makes, from the same pool."""
    with _lock:
        raw = _random(16)
    return _uuid(int.from_bytes(raw) & _V4_CLEAR | _V4_SET)


_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


def _uuid(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value already in range with its version and variant
    bits set, without the constructor's argument checks (ten times the cost, and several
    ids a tip)."""
    made = _new(uuid.UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _UNKNOWN)
    return made
