"""The summary as CSV: one row per breakdown cell, the same suppressed values as the JSON."""

from __future__ import annotations

import csv
import io
from typing import Any

from cpu_reporting.domain.report import COUNT_FIGURES, MEDIAN_FIGURES, MONTH_FIGURES

COLUMNS: tuple[str, ...] = (
    *COUNT_FIGURES,
    "arrest_rate",
    "sentence_years",
    *MEDIAN_FIGURES,
)


def _value(row: dict[str, Any], name: str) -> str:
    if name.startswith("victim_services."):
        value = row.get("victim_services", {}).get(name.split(".", 1)[1])
    else:
        value = row.get(name)
    if value is None:
        return ""
    return str(value)


def _safe(text: str) -> str:
    # Never a formula in a spreadsheet (values are codes and numbers, but be sure).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def summary_csv(doc: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["breakdown", "key", *COLUMNS])
    period = f"{doc['period']['from']}..{doc['period']['to']}"
    writer.writerow(["total", period, *(_safe(_value(doc, c)) for c in COLUMNS)])
    for dimension in ("province", "offence", "team"):
        for row in doc.get(f"by_{dimension}", []):
            writer.writerow(
                [dimension, _safe(str(row[dimension])), *(_safe(_value(row, c)) for c in COLUMNS)]
            )
    for row in doc.get("by_month", []):
        writer.writerow(
            [
                "month",
                row["month"],
                *(_safe(_value(row, c)) if c in MONTH_FIGURES else "" for c in COLUMNS),
            ]
        )
    return out.getvalue()
