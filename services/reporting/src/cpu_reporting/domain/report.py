"""The published summary: figures, breakdowns, rates and medians, with suppression applied.

Pure: it takes what the store added up for a period (cells by province x team set x offence
set, distinct children, medians) and returns the document the API, the CSV, the PDF and the
dashboard publish. See :mod:`.contributions` for what each figure counts and
:mod:`.suppression` for how small cells are hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cpu_reporting.domain.contributions import (
    MEASURES,
    METRIC_INDEX,
    METRICS,
    VICTIM_SERVICES,
    set_members,
)
from cpu_reporting.domain.suppression import Shown, Suppression, is_hidden

#: Published count figures: output name -> stored metric (None: counted distinct).
COUNT_FIGURES: dict[str, str | None] = {
    "referrals": "referrals",
    "investigations": "investigations",
    "investigations_with_arrest": "investigations_with_arrest",
    "arrests": "arrests",
    "charged": "charged",
    "convictions": "convictions",
    "acquittals": "acquittals",
    "child_homicides": "child_homicides",
    "children_legal_representation": None,
    **{f"victim_services.{s}": f"svc_{s}" for s in VICTIM_SERVICES},
    "evidence_items": "evidence_items",
    "lab_analyses_requested": "lab_analyses_requested",
    "lab_analyses_completed": "lab_analyses_completed",
    "icac_tips_received": "tips_received",
    "icac_tips_actioned": "tips_actioned",
    "icac_tips_escalated": "tips_escalated",
}

MEDIAN_FIGURES: dict[str, str] = {
    "median_days_referral_to_arrest": "referral_to_arrest_days",
    "median_hours_referral_to_first_contact": "referral_to_first_contact_hours",
    "median_days_referral_to_first_service": "referral_to_first_service_days",
}

#: Shown for a dimension value that is empty: a case with no province, no team, no offence.
NONE_LABEL = {"province": "unknown", "team": "none", "offence": "none"}

DEFINITIONS: dict[str, str] = {
    "investigations": "Cases opened (case.opened) in the period, by opening day in Cambodia.",
    "arrests": "Suspects arrested in the period: one per suspect per case, on the first "
    "arrest day.",
    "arrest_rate": "Investigations opened in the period with at least one suspect arrested "
    "(by now) / investigations opened in the period.",
    "charged": "Suspects charged in the period: one per suspect per case, first charge day.",
    "convictions": "Suspects whose latest court decision, dated in the period, is a conviction.",
    "sentence_years": "Sum of the sentences of those convictions, in years (months / 12).",
    "child_homicides": "Cases opened in the period with homicide among their concerns and a "
    "child under 15, or closed by casework as a child homicide.",
    "children_legal_representation": "Distinct children (pseudonymous ids) given a "
    "legal_representation victim service dated in the period.",
    "victim_services": "Victim services provided in the period, one per child, type and day.",
    "icac_tips_received": "ICAC tips received in the period.",
    "icac_tips_actioned": "ICAC tips escalated or closed as actionable/escalate in the period "
    "(first such day).",
    "icac_tips_escalated": "ICAC tips escalated in the period (first escalation).",
    "evidence_items": "Evidence items registered in the period.",
    "lab_analyses_requested": "Laboratory analyses requested in the period.",
    "lab_analyses_completed": "Laboratory analyses completed in the period.",
    "median_days_referral_to_arrest": "Median days from the referral's receipt to the case's "
    "first arrest, over cases whose first arrest is in the period.",
    "median_hours_referral_to_first_contact": "Median whole hours from the referral's receipt "
    "to the first contact with a child; empty until casework publishes "
    "case.first_contact_recorded.",
    "median_days_referral_to_first_service": "Median days from the referral's receipt to the "
    "first victim service given to a child of the case.",
    "offence": "Offence codes charged or convicted on the case (for charges and court "
    "outcomes: the suspect's); a case with several appears under each; 'none' if not charged.",
    "team": "Teams named when the case opened or assigned since; a case with several appears "
    "under each.",
    "suppression": "Counts from 1 to threshold-1 show as '<threshold'; when exactly one cell of "
    "a breakdown is hidden, the next smallest non-zero cell is withheld too and shown as 'x'; "
    "rates, sentence years and medians built on hidden counts (or fewer than threshold "
    "observations) are null.",
}


@dataclass
class Cell:
    """Counts added up over the period for one (province, team set, offence set)."""

    province: str
    teams: str
    offences: str
    counts: list[int]


Median = tuple[float | None, int]  # (median, number of observations)


@dataclass
class ReportData:
    """What the store returns for one period and filter."""

    cells: list[Cell]
    # Counts already grouped ("total" -> {"": counts}, "province" -> {code: counts}, ...): when
    # given, the summary uses them instead of grouping ``cells`` (the cube read path).
    groups: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # Distinct children with legal representation: "total" -> {"": n}, "province" -> {...}...
    children: dict[str, dict[str, int]] = field(default_factory=dict)
    # Medians: "total" -> {"": {measure: (median, n)}}, "province" -> {code: {...}}, ...
    medians: dict[str, dict[str, dict[str, Median]]] = field(default_factory=dict)
    # Optional series: month -> counts (whole period, same filters).
    months: dict[date, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Query:
    start: date
    end: date
    province: str | None = None
    team: str | None = None
    offence: str | None = None


def _zero() -> list[int]:
    return [0] * len(METRICS)


def _add(into: list[int], counts: Iterable[int]) -> None:
    for i, v in enumerate(counts):
        into[i] += v


def group_cells(cells: Iterable[Cell], dimension: str) -> dict[str, list[int]]:
    """Counts per value of ``dimension`` (``province``: one value per cell; ``team`` and
    ``offence``: every member of the cell's set, ``""`` for an empty set)."""
    out: dict[str, list[int]] = {}
    for cell in cells:
        if dimension == "province":
            keys = [cell.province]
        elif dimension == "team":
            keys = set_members(cell.teams) or [""]
        elif dimension == "offence":
            keys = set_members(cell.offences) or [""]
        else:
            raise ValueError(dimension)
        for key in keys:
            _add(out.setdefault(key, _zero()), cell.counts)
    return out


def grouped_counts(data: ReportData, dimension: str) -> dict[str, list[int]]:
    """Counts per value of ``dimension`` (``total``: one value, ``""``), from the groups the
    store read when it read them, else from the cells."""
    if data.groups:
        return data.groups.get(dimension, {})
    if dimension == "total":
        total = _zero()
        for cell in data.cells:
            _add(total, cell.counts)
        return {"": total}
    return group_cells(data.cells, dimension)


def _raw_figures(counts: list[int], children: int) -> dict[str, int]:
    raw: dict[str, int] = {}
    for name, metric in COUNT_FIGURES.items():
        raw[name] = children if metric is None else counts[METRIC_INDEX[metric]]
    return raw


def _publish_row(
    shown: dict[str, Shown],
    counts: list[int],
    medians: Mapping[str, Median],
    suppression: Suppression,
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    withheld: list[str] = []
    services: dict[str, Shown] = {}
    for name, value in shown.items():
        if name.startswith("victim_services."):
            services[name.split(".", 1)[1]] = value
        else:
            row[name] = value
    row["victim_services"] = services
    inv, with_arrest = shown["investigations"], shown["investigations_with_arrest"]
    if is_hidden(inv) or is_hidden(with_arrest):
        row["arrest_rate"] = None
        withheld.append("arrest_rate")
    else:
        row["arrest_rate"] = round(int(with_arrest) / int(inv), 3) if inv else None
    if is_hidden(shown["convictions"]):
        row["sentence_years"] = None
        withheld.append("sentence_years")
    else:
        row["sentence_years"] = round(counts[METRIC_INDEX["sentence_months"]] / 12, 1)
    for name, measure in MEDIAN_FIGURES.items():
        median, n = medians.get(measure, (None, 0))
        published = suppression.median(median, n)
        if median is not None and published is None:
            withheld.append(name)
        row[name] = published
    row["withheld"] = withheld
    return row


def build_summary(
    data: ReportData, query: Query, suppression: Suppression, *, as_of: str | None = None
) -> dict[str, Any]:
    """The published summary document for ``query``."""
    total_counts = grouped_counts(data, "total").get("", _zero())
    total_children = data.children.get("total", {}).get("", 0)
    total_raw = _raw_figures(total_counts, total_children)
    total_shown = {name: suppression.total(v) for name, v in total_raw.items()}
    doc: dict[str, Any] = {
        "period": {"from": query.start.isoformat(), "to": query.end.isoformat()},
        "filters": {"province": query.province, "team": query.team, "offence": query.offence},
        "suppression": {"threshold": suppression.threshold, "marker": suppression.marker},
        "as_of": as_of,
    }
    doc |= _publish_row(
        total_shown, total_counts, data.medians.get("total", {}).get("", {}), suppression
    )
    for dimension in ("province", "offence", "team"):
        grouped = grouped_counts(data, dimension)
        children = data.children.get(dimension, {})
        keys = sorted(set(grouped) | set(children), key=lambda k: (k == "", k))
        raws = {k: _raw_figures(grouped.get(k, _zero()), children.get(k, 0)) for k in keys}
        shown_rows: dict[str, dict[str, Shown]] = {k: {} for k in keys}
        for name in COUNT_FIGURES:
            shown = suppression.breakdown({k: raws[k][name] for k in keys}, total_raw[name])
            for k in keys:
                shown_rows[k][name] = shown[k]
        medians = data.medians.get(dimension, {})
        doc[f"by_{dimension}"] = [
            {
                dimension: k or NONE_LABEL[dimension],
                **_publish_row(
                    shown_rows[k], grouped.get(k, _zero()), medians.get(k, {}), suppression
                ),
            }
            for k in keys
        ]
    if data.months:
        doc["by_month"] = month_series(data.months, total_counts, suppression)
    doc["definitions"] = DEFINITIONS
    return doc


#: The figures the dashboard and the report chart per month.
MONTH_FIGURES = ("investigations", "arrests", "convictions", "icac_tips_received")


def month_series(
    months: Mapping[date, list[int]], totals: list[int], suppression: Suppression
) -> list[dict[str, Any]]:
    keys = sorted(months)
    rows: dict[date, dict[str, Shown]] = {k: {} for k in keys}
    for name in MONTH_FIGURES:
        metric = COUNT_FIGURES[name]
        assert metric is not None
        index = METRIC_INDEX[metric]
        shown = suppression.breakdown(
            {k.isoformat(): months[k][index] for k in keys}, totals[index]
        )
        for k in keys:
            rows[k][name] = shown[k.isoformat()]
    return [{"month": k.strftime("%Y-%m"), **rows[k]} for k in keys]


def median_of(histogram: Mapping[int, int]) -> Median:
    """The median of values given as value -> count (the mean of the two middle values when
    the number of observations is even)."""
    n = sum(histogram.values())
    if n == 0:
        return None, 0
    lo_pos, hi_pos = (n + 1) // 2, n // 2 + 1
    lo = hi = None
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if lo is None and seen >= lo_pos:
            lo = value
        if seen >= hi_pos:
            hi = value
            break
    assert lo is not None and hi is not None
    return (lo + hi) / 2, n


__all__ = [
    "COUNT_FIGURES",
    "DEFINITIONS",
    "MEASURES",
    "MEDIAN_FIGURES",
    "Cell",
    "Query",
    "ReportData",
    "build_summary",
    "group_cells",
    "grouped_counts",
    "median_of",
]
