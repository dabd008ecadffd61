"""Offence codes under Cambodian law, from the unit's table ``offences.json`` beside this module.

A code names a law and an article: ``LSHTSE-2008-art-34`` is article 34 of the 2008 Law on
Suppression of Human Trafficking and Sexual Exploitation, ``CC-2009-art-239`` article 239 of the
2009 Criminal Code. Charges and court outcomes accept only codes in the table; events carry the
codes, never titles. The table is reference data the unit's legal adviser maintains (see its
``note``): a focused set of the offences the unit charges, not the whole of Cambodian law.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from cpu_casework.domain.errors import InvalidValue

_CODE = re.compile(r"^(?P<law>LSHTSE-2008|CC-2009)-art-(?P<article>[1-9][0-9]{0,3})$")


class UnknownOffence(InvalidValue):
    rule = "unknown_offence"

    def __init__(self, code: str) -> None:
        super().__init__("offence_codes", f"{code!r} is not in the unit's offence table")
        self.code = code


@dataclass(frozen=True)
class Offence:
    code: str
    title_en: str
    law: str
    article: int


class OffenceTable:
    """The offences a charge or a court outcome may name, by code."""

    def __init__(self, offences: Iterable[Offence], *, laws: dict[str, str] | None = None) -> None:
        self._by_code: dict[str, Offence] = {}
        for offence in offences:
            match = _CODE.match(offence.code)
            if (
                match is None
                or match["law"] != offence.law
                or int(match["article"]) != offence.article
            ):
                raise ValueError(f"offence code {offence.code!r} does not match its law/article")
            if not offence.title_en.strip():
                raise ValueError(f"offence {offence.code} has no title")
            if offence.code in self._by_code:
                raise ValueError(f"offence {offence.code} is listed twice")
            self._by_code[offence.code] = offence
        self.laws = dict(laws or {})

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> OffenceTable:
        return cls(
            (
                Offence(
                    code=row["code"],
                    title_en=row["title_en"],
                    law=row["law"],
                    article=int(row["article"]),
                )
                for row in document["offences"]
            ),
            laws=document.get("laws", {}),
        )

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Offence]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)

    def get(self, code: str) -> Offence:
        try:
            return self._by_code[code]
        except KeyError:
            raise UnknownOffence(code) from None

    def validate(self, codes: Iterable[str], *, allow_empty: bool = False) -> tuple[str, ...]:
        """The codes, each checked against the table, duplicates dropped, order kept."""
        if isinstance(codes, str):
            raise InvalidValue("offence_codes", "must be a list of codes")
        seen: dict[str, None] = {}
        for code in codes:
            self.get(code)
            seen[code] = None
        if not seen and not allow_empty:
            raise InvalidValue("offence_codes", "at least one offence code is required")
        return tuple(seen)


@cache
def default_offence_table() -> OffenceTable:
    """The table shipped with the service (read once)."""
    text = resources.files("cpu_casework.domain").joinpath("offences.json").read_text("utf-8")
    return OffenceTable.from_json(json.loads(text))
