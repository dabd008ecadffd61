"""Record ids: UUIDv7 (RFC 9562), time-ordered, made before the insert.

Time order matters beyond indexes: a subject cluster's id is its smallest tip id
(:mod:`cpu_icac.domain.linking`), which with these ids is its oldest tip. Within one process
ids are strictly increasing (a 12-bit counter within a millisecond, then the clock is borrowed
from); across processes they are ordered to the millisecond.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_seq = 0


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
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62
    return uuid.UUID(int=value | secrets.randbits(62))
