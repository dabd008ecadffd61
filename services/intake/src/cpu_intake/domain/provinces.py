"""Cambodia's provinces by their official two-digit code (CONTRACT.md section 6).

The list is package data, ``provinces.csv``, a copy of ``shared/data/provinces.csv``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Province:
    code: str  # "01" .. "25"
    name_en: str
    name_km: str


@cache
def provinces() -> Mapping[str, Province]:
    """Every province, by code, in code order."""
    text = resources.files(__package__).joinpath("provinces.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return {row["code"]: Province(row["code"], row["name_en"], row["name_km"]) for row in rows}


def province(code: str) -> Province | None:
    """The province with this code, or None."""
    return provinces().get(code)
