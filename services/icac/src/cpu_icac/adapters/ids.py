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
    return uuid.UUID(int=value | rand)


def uuid4() -> uuid.UUID:
    """A random UUID (version 4), as ``uuid.uuid4()`` makes, from the same pool."""
    with _lock:
        raw = _random(16)
    return uuid.UUID(bytes=raw, version=4)
