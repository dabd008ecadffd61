"""Investigation outcomes: suspects, arrests, charges, court outcomes, and the child-homicide rule.

* A **suspect** is an id and a sealed reference to their personal details. The adapter encrypts
  the details (name, aliases, identity numbers...) and hands the domain an opaque
  ``details_ref``; the domain stores it, never reads it, and keeps it out of ``repr`` and of
  every event.
* An **arrest** names a suspect on the case and a date in Cambodia, neither in the future nor
  before the case was opened.
* A **charge** names a suspect and one or more offence codes from the unit's table
  (:mod:`~.offences`), with the same date rules.
* A **court outcome** is ``convicted`` or ``acquitted``, per suspect, for a suspect charged in
  the current cycle, one per suspect per cycle, decided no earlier than that suspect's first
  charge. A custodial sentence is years and months (months 0-11, total above zero, years at
  most :data:`MAX_SENTENCE_YEARS`); a conviction without one (a fine, a fully suspended
  sentence) has ``sentence=None``; an acquittal never has one.
* **Child homicide**: a case whose concerns include ``homicide`` and which has a child known to
  be under 15 is flagged; HIT leads it. The flag is never cleared by the domain: once a child
  under 15 is known to have been killed, the record keeps saying so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from cpu_casework.domain.errors import CaseworkError, InvalidValue

CONVICTED = "convicted"
ACQUITTED = "acquitted"
OUTCOMES: tuple[str, ...] = (CONVICTED, ACQUITTED)

# The longest fixed term of imprisonment under the 2009 Criminal Code; longer is a typing error.
MAX_SENTENCE_YEARS = 30
CHILD_HOMICIDE_AGE_LIMIT = 15


class SuspectNotCharged(CaseworkError):
    rule = "suspect_not_charged"

    def __init__(self, suspect_id: str) -> None:
        super().__init__(f"suspect {suspect_id} has no charge in the current cycle")
        self.suspect_id = suspect_id


class InvalidSentence(InvalidValue):
    rule = "invalid_sentence"

    def __init__(self, message: str) -> None:
        super().__init__("sentence", message)


@dataclass(frozen=True)
class Suspect:
    suspect_id: str
    # Sealed by the adapter; opaque here. Kept out of repr so logs never carry it.
    details_ref: str = field(repr=False)
    identified_at: datetime
    identified_by: str


@dataclass(frozen=True)
class Arrest:
    suspect_id: str
    arrested_on: date
    recorded_at: datetime
    recorded_by: str
    cycle: int


@dataclass(frozen=True)
class Charge:
    suspect_id: str
    offence_codes: tuple[str, ...]
    charged_on: date
    recorded_at: datetime
    recorded_by: str
    cycle: int


@dataclass(frozen=True)
class Sentence:
    """A custodial sentence: years and months of imprisonment."""

    years: int = 0
    months: int = 0

    def __post_init__(self) -> None:
        for name, value in (("years", self.years), ("months", self.months)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidSentence(f"{name} must be a whole number")
        if not 0 <= self.months <= 11:
            raise InvalidSentence("months must be 0 to 11 (carry whole years into years)")
        if not 0 <= self.years <= MAX_SENTENCE_YEARS:
            raise InvalidSentence(f"years must be 0 to {MAX_SENTENCE_YEARS}")
        if self.total_months == 0:
            raise InvalidSentence("a custodial sentence is longer than zero")

    @property
    def total_months(self) -> int:
        return self.years * 12 + self.months


@dataclass(frozen=True)
class CourtOutcome:
    suspect_id: str
    outcome: str
    offence_codes: tuple[str, ...]
    sentence: Sentence | None
    decided_on: date
    recorded_at: datetime
    recorded_by: str
    cycle: int

    @property
    def sentence_months(self) -> int:
        return self.sentence.total_months if self.sentence is not None else 0


def check_sentence(outcome: str, sentence: Sentence | None) -> None:
    if outcome not in OUTCOMES:
        raise InvalidValue("outcome", f"must be one of {', '.join(OUTCOMES)}")
    if sentence is not None and not isinstance(sentence, Sentence):
        raise InvalidSentence("must be a Sentence of years and months")
    if outcome == ACQUITTED and sentence is not None:
        raise InvalidSentence("an acquittal carries no sentence")


def is_child_homicide(concerns: Iterable[str], ages: Iterable[int | None]) -> bool:
    """Homicide is among the concerns and a child is known to be under 15.

    A child of unknown age does not set the flag: it counts child homicides for reporting and
    must not over-count. HIT may still lead such a case.
    """
    return "homicide" in set(concerns) and any(
        age is not None and age < CHILD_HOMICIDE_AGE_LIMIT for age in ages
    )
