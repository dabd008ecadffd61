"""The distinct-children cube rows (``first_days``): summing a period's rows whose previous day
is before the period counts every child once, exactly as counting distinct children does, for
any period (days, whole months, whole years, and mixes) and every cube key."""

from __future__ import annotations

import random
from datetime import date, timedelta

from cpu_reporting.adapters.store import RollupRows, segments, year_segments
from cpu_reporting.domain.contributions import ALL, NO_PREVIOUS, cube_keys, first_days

PROVINCES = ["01", "12", ""]
TEAMS = ["", "|HIT|", "|HIT|OVCS|", "|FST|"]
OFFENCES = ["", "|CC-2009-art-239|", "|CC-2009-art-239|CC-art-246|"]


def random_children(rng: random.Random, n: int) -> dict[str, list[tuple[date, str, str, str]]]:
    """Children with days in several cases (dimensions), often in the same month or year."""
    out: dict[str, list[tuple[date, str, str, str]]] = {}
    for i in range(n):
        first = date(2022, 11, 1) + timedelta(days=rng.randrange(500))
        held = []
        for _ in range(rng.randrange(1, 6)):
            day = first + timedelta(days=rng.choice((0, 1, 3, 20, 45, 200, 400)))
            held.append((day, rng.choice(PROVINCES), rng.choice(TEAMS), rng.choice(OFFENCES)))
        out[f"child-{i}"] = held
    return out


def counted(rows: dict, key: tuple[str, str, str], start: date, end: date) -> int:
    parts = []
    for segment in segments(start, end):
        parts.extend(year_segments(segment) if segment.grain == "m" else [segment])
    return sum(
        n
        for (p, t, o, grain, period, prev), n in rows.items()
        if (p, t, o) == key
        and prev < start
        and any(s.grain == grain and s.start <= period <= s.end for s in parts)
    )


def test_summed_rows_count_each_child_once_in_any_period() -> None:
    rng = random.Random(7)
    children = random_children(rng, 300)
    rows: dict = {}
    for held in children.values():
        for key, n in first_days(held).items():
            rows[key] = rows.get(key, 0) + n
    keys = sorted({k for held in children.values() for d in held for k in cube_keys(*d[1:])})
    periods = [
        (date(2023, 1, 1), date(2023, 12, 31)),
        (date(2022, 11, 1), date(2024, 12, 31)),
        (date(2023, 3, 17), date(2024, 2, 11)),
        (date(2023, 5, 3), date(2023, 5, 20)),
        (date(2023, 7, 12), date(2024, 12, 31)),
        (date(2023, 2, 1), date(2023, 2, 28)),
        (date(2022, 12, 31), date(2023, 1, 1)),
    ]
    checked = 0
    for start, end in periods:
        for key in keys:
            expected = sum(
                1
                for held in children.values()
                if any(start <= d[0] <= end and key in cube_keys(*d[1:]) for d in held)
            )
            assert counted(rows, key, start, end) == expected, (start, end, key)
            checked += expected
    assert checked > 1000  # not vacuous


def test_a_child_on_the_same_day_in_two_cases_is_one_day() -> None:
    day = date(2024, 3, 5)
    rows = first_days([(day, "01", "|HIT|", ""), (day, "01", "|HIT|", "")])
    assert rows[("01", "HIT", "", "d", day, NO_PREVIOUS)] == 1
    assert rows[(ALL, ALL, ALL, "y", date(2024, 1, 1), NO_PREVIOUS)] == 1
    later = first_days([(day, "01", "", ""), (day + timedelta(days=3), "01", "", "")])
    # The second day's previous day is in the same month: no monthly or yearly row for it.
    assert ("01", "", "", "d", day + timedelta(days=3), day) in later
    assert not [k for k in later if k[3] in ("m", "y") and k[5] == day]


def test_the_rebuild_rows_are_the_sum_over_children() -> None:
    rows = RollupRows()
    day = date(2024, 3, 5)
    rows.distincts = {
        ("children_legal_representation", "case-1", "child-a", day, "01", "", ""),
        ("children_legal_representation", "case-2", "child-a", day, "12", "", ""),
        ("children_legal_representation", "case-2", "child-b", day, "12", "", ""),
    }
    children = rows.children()
    total = ("children_legal_representation", ALL, ALL, ALL, "d", day, NO_PREVIOUS)
    assert children[total] == 2
    assert children[("children_legal_representation", "12", ALL, ALL, "d", day, NO_PREVIOUS)] == 2
    assert (
        children[
            ("children_legal_representation", "01", ALL, ALL, "m", date(2024, 3, 1), NO_PREVIOUS)
        ]
        == 1
    )
