"""The deny-list check every event passes before reporting stores anything of it.

Reporting holds no personal data: not a name, phone, address, narrative or date of birth. The
contracts already keep such fields out of the events reporting reads; this is the second lock
on the same door, applied to the data as it arrives, whatever model the publisher used. A key
is personal when its whole lower-case name, or any ``[a-z0-9]+`` word of it, is on
:data:`~cpu_shared.contracts.PERSONAL_FIELD_DENYLIST` (the rule the contract tests apply to
the models), at any depth of nested objects and lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from cpu_shared.contracts import PERSONAL_FIELD_DENYLIST

_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=4096)
def is_personal_key(key: str) -> bool:
    """True when a field of this name may hold personal data (names, phones, narratives...)."""
    lowered = key.lower()
    if lowered in PERSONAL_FIELD_DENYLIST:
        return True
    return not PERSONAL_FIELD_DENYLIST.isdisjoint(_WORD.findall(lowered))


def personal_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """Dotted paths (list items as ``[]``) of every deny-listed key in ``value``."""
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            path = f"{prefix}{name}"
            if is_personal_key(name):
                yield path
            if isinstance(item, dict | list):
                yield from personal_paths(item, path + ".")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                yield from personal_paths(item, prefix.rstrip(".") + "[].")


def has_personal_key(value: Any) -> bool:
    """Whether :func:`personal_paths` would find anything: the same walk without building
    paths, since nearly every event has none (the rebuild runs this on every event)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if is_personal_key(str(key)):
                return True
            if isinstance(item, dict | list) and has_personal_key(item):
                return True
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and has_personal_key(item):
                return True
    return False


def rejection_reason(data: Any) -> str | None:
    """The reason to refuse an event's data, naming the fields (never their values); None if
    the data holds no deny-listed field."""
    if not has_personal_key(data):
        return None
    paths = sorted(set(personal_paths(data)))
    if not paths:
        return None
    shown = ", ".join(paths[:10])
    more = f" (+{len(paths) - 10} more)" if len(paths) > 10 else ""
    return f"personal_data: deny-listed field(s) {shown}{more}; reporting stores none"
