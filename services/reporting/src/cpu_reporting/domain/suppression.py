"""Small-cell suppression of published counts.

Method (applied to every count the service publishes: JSON, CSV, PDF, dashboard):

1. **Primary**: a count from 1 to ``threshold - 1`` (default 1 to 4) is shown as ``"<5"``
   (``"<threshold"``). Zero is shown: it identifies no one.
2. **Complementary**: within one breakdown of one figure (by province, by offence, by team, by
   month) whose total is published, if exactly one cell is suppressed, the total minus the other
   cells would give it back; so the smallest other non-zero cell is suppressed too (ties: the
   first in the breakdown's order) and shown as ``"x"`` (it is not small, only withheld, and
   saying "<5" of it would be false). With two or more suppressed cells, only their sum can be
   derived, and it says nothing about any one of them.
3. **Derived values follow their counts**: a rate is withheld (``null``) when its numerator or
   its denominator is suppressed; sentence years when the convictions they sum are; a median
   when fewer than ``threshold`` observations make it.

What this does not cover, and why it is acceptable here: two requests for overlapping periods or
filters can be subtracted from each other. The figures are only served to the roles that may
read them (see ``permissions.py``), every read and export is audited, and published reports
should use whole months, quarters or years.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Shown = int | str  # a count, "<5", or "x"
#: Shown for a cell withheld only so that a small cell cannot be recovered from the total.
COMPLEMENTARY = "x"


@dataclass(frozen=True)
class Suppression:
    threshold: int = 5

    def __post_init__(self) -> None:
        if self.threshold < 2:
            raise ValueError("the suppression threshold is at least 2")

    @property
    def marker(self) -> str:
        return f"<{self.threshold}"

    def is_small(self, value: int) -> bool:
        return 0 < value < self.threshold

    def total(self, value: int) -> Shown:
        """A total on its own: primary suppression only."""
        return self.marker if self.is_small(value) else value

    def breakdown_hidden(self, cells: Sequence[int], total_hidden: bool) -> list[bool]:
        """Which cells of one breakdown to hide (primary, then complementary)."""
        hidden = [self.is_small(v) for v in cells]
        if sum(hidden) == 1 and not total_hidden:
            candidates = [(v, i) for i, v in enumerate(cells) if v > 0 and not hidden[i]]
            if candidates:
                hidden[min(candidates)[1]] = True
        return hidden

    def breakdown(self, cells: Mapping[str, int], total: int) -> dict[str, Shown]:
        keys = list(cells)
        hidden = self.breakdown_hidden([cells[k] for k in keys], self.is_small(total))
        out: dict[str, Shown] = {}
        for k, h in zip(keys, hidden, strict=True):
            value = cells[k]
            out[k] = (self.marker if self.is_small(value) else COMPLEMENTARY) if h else value
        return out

    def median(self, value: float | None, n: int) -> float | None:
        return None if value is None or n < self.threshold else value


def is_hidden(shown: Shown) -> bool:
    return isinstance(shown, str)
