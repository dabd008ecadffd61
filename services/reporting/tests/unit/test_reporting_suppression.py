"""Small-cell suppression: primary, complementary, derived values, and that no published total
gives a hidden cell back."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from cpu_reporting.domain.contributions import METRIC_INDEX, METRICS
from cpu_reporting.domain.report import Cell, Query, ReportData, build_summary
from cpu_reporting.domain.suppression import Suppression

S = Suppression(5)


def test_counts_from_1_to_4_show_as_lt5_and_zero_shows() -> None:
    assert [S.total(v) for v in (0, 1, 4, 5, 87)] == [0, "<5", "<5", 5, 87]
    assert Suppression(10).total(9) == "<10"
    with pytest.raises(ValueError):
        Suppression(1)


def test_one_hidden_cell_hides_the_next_smallest() -> None:
    shown = S.breakdown({"12": 40, "17": 3, "02": 9, "01": 12, "03": 0}, total=64)
    assert shown == {"12": 40, "17": "<5", "02": "x", "01": 12, "03": 0}


def test_two_hidden_cells_need_nothing_more() -> None:
    shown = S.breakdown({"a": 1, "b": 2, "c": 30}, total=33)
    assert shown == {"a": "<5", "b": "<5", "c": 30}


def test_a_hidden_total_hides_its_cells() -> None:
    assert S.breakdown({"a": 3, "b": 0}, total=3) == {"a": "<5", "b": 0}


def recoverable(cells: dict[str, int], shown: dict[str, object], total: object) -> set[str]:
    """Cells an attacker can compute exactly from the published total and visible cells."""
    hidden = [k for k, v in shown.items() if isinstance(v, str)]
    if isinstance(total, str) or len(hidden) != 1:
        return set()
    return set(hidden)


@pytest.mark.parametrize("values", list(itertools.product([0, 1, 3, 4, 5, 7], repeat=4)))
def test_no_published_total_recovers_a_hidden_cell(values: tuple[int, ...]) -> None:
    cells = dict(zip("abcd", values, strict=True))
    total = sum(values)
    shown = S.breakdown(cells, total)
    assert not recoverable(cells, shown, S.total(total))
    for key, value in cells.items():
        if 0 < value < 5:
            assert shown[key] == "<5"
        elif shown[key] == "x":
            assert value >= 5
        # Everything visible is exact.
        if not isinstance(shown[key], str):
            assert shown[key] == value


def counts(**values: int) -> list[int]:
    row = [0] * len(METRICS)
    for name, value in values.items():
        row[METRIC_INDEX[name]] = value
    return row


def test_summary_breakdowns_and_derived_values_follow_the_counts() -> None:
    data = ReportData(
        cells=[
            Cell(
                "12",
                "|OVCS|",
                "",
                counts(
                    investigations=40,
                    investigations_with_arrest=35,
                    convictions=10,
                    sentence_months=600,
                ),
            ),
            Cell(
                "17",
                "|HIT|",
                "",
                counts(
                    investigations=3,
                    investigations_with_arrest=3,
                    convictions=2,
                    sentence_months=240,
                ),
            ),
            Cell("02", "|OVCS|", "", counts(investigations=9, investigations_with_arrest=4)),
        ],
        children={"total": {"": 0}},
    )
    doc = build_summary(data, Query(date(2024, 1, 1), date(2024, 12, 31)), S)
    assert doc["investigations"] == 52
    assert doc["arrest_rate"] == round(42 / 52, 3)
    assert doc["sentence_years"] == 70.0
    rows = {r["province"]: r for r in doc["by_province"]}
    # 17 is small; 02 (the next smallest) is hidden with it, so 52 - 40 gives only their sum.
    assert rows["17"]["investigations"] == "<5" and rows["02"]["investigations"] == "x"
    assert rows["12"]["investigations"] == 40
    # Rates and sentences built on hidden counts are withheld.
    assert rows["17"]["arrest_rate"] is None and "arrest_rate" in rows["17"]["withheld"]
    assert rows["02"]["arrest_rate"] is None  # 4 with an arrest: hidden numerator
    assert rows["12"]["arrest_rate"] == round(35 / 40, 3)
    assert rows["17"]["sentence_years"] is None
    # Convictions 10 and 2 (total 12 shown): 2 is hidden, so 10 is withheld as "x" with it.
    assert rows["17"]["convictions"] == "<5" and rows["12"]["convictions"] == "x"
    assert rows["02"]["convictions"] == 0 and doc["convictions"] == 12
    assert rows["12"]["sentence_years"] is None


def test_medians_need_threshold_observations() -> None:
    assert S.median(12.0, 4) is None
    assert S.median(12.0, 5) == 12.0
