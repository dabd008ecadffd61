"""Triage: how urgent a referral is and which teams receive it, from a rule table kept as data.

The table is JSON (``triage_rules.json`` in this package is the unit's default); the service
loads the file named in its configuration with :func:`load_rules`, so the unit changes the
rules without changing code. The default table, in order:

====================== ==================================================== ======== ======
rule id                fires when                                           priority teams
====================== ==================================================== ======== ======
immediate_danger       the child is in immediate danger                     P1
injuries               the child is injured                                 P1
homicide               concern ``homicide``                                 P1       HIT
perpetrator_has_access an alleged perpetrator has access to the child       P1
sexual_abuse           concern ``sexual_abuse`` or ``rape``                 P2
trafficking            concern ``trafficking``                              P2
online_exploitation    concern ``online_exploitation``                      P2       ICAC
victim_support         always                                                        OVCS
====================== ==================================================== ======== ======

No rule setting a priority fired: ``default_priority`` (P3).

Semantics: every rule is evaluated, in table order. The priority is the *most urgent* among
the fired rules, so a table put in the wrong order can never lower a referral's urgency; the
order decides only how teams and rule ids are listed. Sexual abuse and rape go to no extra
team (the team codes have no general investigation team; casework assigns the investigator):
the file's ``description`` says how to add, say, rape -> FST.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from cpu_shared.contracts.codes import Concern, Priority, Team

if TYPE_CHECKING:
    from cpu_intake.domain.referral import ReferralCreate

DEFAULT_RULES_FILE = "triage_rules.json"
PRIORITY_ORDER: tuple[Priority, ...] = get_args(Priority)  # most urgent first


class TriageRulesError(ValueError):
    """The rule file is missing, not JSON, or not a valid rule table."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleText(_Strict):
    """Why a rule fired, as the officer reads it."""

    en: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    km: Annotated[str, StringConstraints(min_length=1, max_length=300)]


class Condition(_Strict):
    """When a rule fires: every key given must hold (at least one key)."""

    always: Literal[True] | None = None
    immediate_danger: bool | None = None
    injuries: bool | None = None
    perpetrator_has_access: bool | None = None
    concerns_any: Annotated[list[Concern], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Condition:
        if all(getattr(self, key) is None for key in type(self).model_fields):
            raise ValueError('a condition needs at least one key; use {"always": true}')
        return self

    def holds(self, facts: TriageFacts) -> bool:
        checks = (
            (self.immediate_danger, facts.immediate_danger),
            (self.injuries, facts.injuries),
            (self.perpetrator_has_access, facts.perpetrator_has_access),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        return self.concerns_any is None or not facts.concerns.isdisjoint(self.concerns_any)


class TriageRule(_Strict):
    id: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,49}$")]
    description: RuleText
    when: Condition
    priority: Priority | None = None
    teams: list[Team] = Field(default_factory=list)

    @model_validator(mode="after")
    def _does_something(self) -> TriageRule:
        if self.priority is None and not self.teams:
            raise ValueError("a rule must set a priority, teams, or both")
        return self


@dataclass(frozen=True, slots=True)
class TriageFacts:
    """What triage looks at; nothing else of the referral."""

    concerns: frozenset[str]
    immediate_danger: bool = False
    injuries: bool = False
    perpetrator_has_access: bool = False

    @classmethod
    def from_referral(cls, referral: ReferralCreate) -> TriageFacts:
        return cls(
            concerns=frozenset(referral.concerns),
            immediate_danger=referral.immediate_danger,
            injuries=referral.injuries,
            # Unknown (None) is not "has access": only a stated yes raises the priority.
            perpetrator_has_access=any(
                p.has_access_to_child is True for p in referral.alleged_perpetrators
            ),
        )


@dataclass(frozen=True, slots=True)
class TriageResult:
    priority: Priority
    teams: tuple[Team, ...]
    rule_ids: tuple[str, ...]  # the rules that fired, in table order
    rules_version: int


class TriageRules(_Strict):
    """A validated rule table."""

    version: Annotated[int, Field(ge=1)]
    description: str = ""
    default_priority: Priority
    rules: Annotated[list[TriageRule], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_ids(self) -> TriageRules:
        ids = [rule.id for rule in self.rules]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(repeated)}")
        return self

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "<rules>") -> TriageRules:
        """Parse and validate a rule table; :class:`TriageRulesError` names every problem."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TriageRulesError(
                f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise TriageRulesError(f"{source}: not a valid triage rule table: {problems}") from exc

    def rule(self, rule_id: str) -> TriageRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def evaluate(self, facts: TriageFacts) -> TriageResult:
        fired = [rule for rule in self.rules if rule.when.holds(facts)]
        priorities = [rule.priority for rule in fired if rule.priority is not None]
        priority = min(priorities, key=PRIORITY_ORDER.index, default=self.default_priority)
        teams = tuple(dict.fromkeys(team for rule in fired for team in rule.teams))
        return TriageResult(
            priority=priority,
            teams=teams,
            rule_ids=tuple(rule.id for rule in fired),
            rules_version=self.version,
        )


def load_rules(path: str | os.PathLike[str] | None = None) -> TriageRules:
    """The rule table in ``path``, or the packaged default when ``path`` is None."""
    if path is None:
        return default_rules()
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise TriageRulesError(f"{os.fspath(path)}: cannot read the rule file ({exc})") from exc
    return TriageRules.from_json(text, source=os.fspath(path))


@cache
def default_rules() -> TriageRules:
    """The table shipped in this package (``triage_rules.json``)."""
    text = resources.files(__package__).joinpath(DEFAULT_RULES_FILE).read_bytes()
    return TriageRules.from_json(text, source=DEFAULT_RULES_FILE)


def triage(referral: ReferralCreate, rules: TriageRules | None = None) -> TriageResult:
    """Priority, teams and fired rule ids of ``referral`` under ``rules`` (default table)."""
    return (rules or default_rules()).evaluate(TriageFacts.from_referral(referral))
