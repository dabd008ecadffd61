"""Facts: what reporting keeps of the events, per pseudonymous aggregate, and how events fold in.

Three kinds of aggregate, each keyed by the pseudonym its events carry:

* ``case`` (``casework.case.events`` and, through their ``case_id``, ``forensics.evidence.events``),
* ``tip`` (``icac.tip.events``),
* ``referral`` (``intake.referral.events``).

Folding an event in is **idempotent and order-independent**: every field is a set union, a
minimum or a maximum, or the value of the event with the highest ``aggregate_version`` (event id
breaking ties). So a redelivered event changes nothing, and events that arrive out of order (an
arrest before its ``case.opened``, a tip's escalation before its receipt) leave the same facts as
in-order delivery. The figures are a pure function of the facts (:mod:`.contributions`), so they
do not depend on arrival order either. Nothing personal is kept: pseudonymous ids, codes, dates.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from cpu_shared.contracts import casework, forensics, icac, intake
from cpu_shared.contracts.base import EventData

#: Cambodia's time (UTC+7, no daylight saving). A day in a report is a day in Phnom Penh.
ICT = timezone(timedelta(hours=7), "ICT")

#: What an offence code must look like to be kept (``LSHTSE-2008-art-15``, ``CC-2009-art-239``,
#: ``CC-art-239``): codes only, so no free text can enter through the one unconstrained list.
OFFENCE_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,15}(-[0-9]{4})?-art-[1-9][0-9]{0,3}[a-z]?$")

CASE, TIP, REFERRAL = "case", "tip", "referral"


class InvalidFact(ValueError):
    """An event whose data is shaped right but cannot be a fact (e.g. a malformed code)."""


def local_day(moment: datetime) -> date:
    """The day in Cambodia of an aware instant."""
    return moment.astimezone(ICT).date()


def _d(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _newer(version: int, event_id: str, current: tuple[int, str] | None) -> bool:
    return current is None or (version, event_id) > current


_Class = TypeVar("_Class", bound=type)


def _by_fields(cls: _Class) -> _Class:
    """Pickle instances as (class, field values): the rebuild sends the facts of a share from
    process to process, and pickle's generic path for slotted classes was most of the cost."""
    fields = operator.attrgetter(*getattr(cls, "__slots__"))  # noqa: B009 (mypy: a plain type)

    def reduce(self: Any) -> tuple[type, tuple[Any, ...]]:
        return cls, fields(self)

    setattr(cls, "__reduce__", reduce)  # noqa: B010
    return cls


# -------------------------------------------------------------------------------- cases


@_by_fields
@dataclass(slots=True)
class Opening:
    """What ``case.opened`` says; the opening with the lowest (version, event id) wins."""

    opened_on: date
    referral_received_at: datetime | None
    province: str | None
    concerns: tuple[str, ...]
    teams: tuple[str, ...]
    children_under_15: int
    version: int
    event_id: str


@_by_fields
@dataclass(slots=True)
class Outcome:
    """A suspect's latest court decision (highest decided_on, then version)."""

    decided_on: date
    convicted: bool
    sentence_months: int
    offences: tuple[str, ...]
    version: int
    event_id: str


@_by_fields
@dataclass(slots=True)
class CaseFacts:
    case_id: str
    opening: Opening | None = None
    # Province from events other than case.opened, used only when case.opened has none.
    other_province: tuple[int, str, str] | None = None  # (version, event id, code)
    assigned_teams: set[str] = field(default_factory=set)
    homicide_at_close: bool = False
    arrests: dict[str, date] = field(default_factory=dict)  # suspect -> first arrest
    charged_on: dict[str, date] = field(default_factory=dict)  # suspect -> first charge
    charge_codes: dict[str, set[str]] = field(default_factory=dict)  # suspect -> codes
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # suspect -> latest decision
    services: set[tuple[str, str, date]] = field(default_factory=set)  # (child, service, on)
    first_contacts: dict[str, datetime] = field(default_factory=dict)  # child -> first contact
    evidence: dict[str, date] = field(default_factory=dict)  # item -> registered on
    analyses_requested: dict[str, date] = field(default_factory=dict)
    analyses_completed: dict[str, date] = field(default_factory=dict)

    # -- derived ---------------------------------------------------------------------------

    @property
    def province(self) -> str | None:
        if self.opening is not None and self.opening.province:
            return self.opening.province
        return self.other_province[2] if self.other_province else None

    @property
    def teams(self) -> frozenset[str]:
        opened = self.opening.teams if self.opening else ()
        return frozenset(self.assigned_teams.union(opened))

    @property
    def offences(self) -> frozenset[str]:
        codes: set[str] = set()
        for suspect_codes in self.charge_codes.values():
            codes |= suspect_codes
        for outcome in self.outcomes.values():
            codes.update(outcome.offences)
        return frozenset(codes)

    @property
    def is_child_homicide(self) -> bool:
        """Homicide is a concern and a child under 15 is on the case when it opened, or
        casework flagged the case a child homicide when closing it (ages learnt later)."""
        if self.opening is None:
            return False
        opened = "homicide" in self.opening.concerns and self.opening.children_under_15 > 0
        return opened or self.homicide_at_close

    # -- folding events in -----------------------------------------------------------------

    def _province_hint(self, code: str | None, version: int, event_id: str) -> None:
        if code and _newer(
            version, event_id, self.other_province[:2] if self.other_province else None
        ):
            self.other_province = (version, event_id, code)

    def apply(self, data: EventData, version: int, event_id: str) -> None:
        if isinstance(data, casework.CaseOpened):
            candidate = Opening(
                opened_on=local_day(data.opened_at),
                referral_received_at=data.referral_received_at,
                province=data.province_code,
                concerns=tuple(sorted(set(data.concerns))),
                teams=tuple(sorted(set(data.teams))),
                children_under_15=data.children_under_15,
                version=version,
                event_id=event_id,
            )
            current = self.opening
            if current is None or (version, event_id) < (current.version, current.event_id):
                self.opening = candidate
        elif isinstance(data, casework.CaseAssigned):
            self.assigned_teams.add(data.team)
            self._province_hint(data.province_code, version, event_id)
        elif isinstance(data, casework.CaseSuspectArrested):
            first = self.arrests.get(data.suspect_id)
            if first is None or data.arrested_on < first:
                self.arrests[data.suspect_id] = data.arrested_on
            self._province_hint(data.province_code, version, event_id)
        elif isinstance(data, casework.CaseCharged):
            codes = checked_offences(data.offence_codes)
            first = self.charged_on.get(data.suspect_id)
            if first is None or data.charged_on < first:
                self.charged_on[data.suspect_id] = data.charged_on
            self.charge_codes.setdefault(data.suspect_id, set()).update(codes)
        elif isinstance(data, casework.CaseCourtOutcomeRecorded):
            candidate_outcome = Outcome(
                decided_on=data.decided_on,
                convicted=data.outcome == "convicted",
                sentence_months=data.sentence_months if data.outcome == "convicted" else 0,
                offences=tuple(sorted(set(checked_offences(data.offence_codes)))),
                version=version,
                event_id=event_id,
            )
            held = self.outcomes.get(data.suspect_id)
            if held is None or (data.decided_on, version, event_id) > (
                held.decided_on,
                held.version,
                held.event_id,
            ):
                self.outcomes[data.suspect_id] = candidate_outcome
        elif isinstance(data, casework.CaseVictimServiceProvided):
            self.services.add((data.child_id, data.service, data.provided_on))
        elif isinstance(data, casework.CaseClosed):
            self.homicide_at_close = self.homicide_at_close or data.child_homicide
        elif data.event_type == "case.first_contact_recorded":
            # Not in the contract yet (see the module doc of .contributions); read by name so
            # the figure appears as soon as casework publishes it.
            child_id = data.child_id  # type: ignore[attr-defined]
            at: datetime = data.contacted_at  # type: ignore[attr-defined]
            first_contact = self.first_contacts.get(child_id)
            if first_contact is None or at < first_contact:
                self.first_contacts[child_id] = at
        elif isinstance(data, forensics.EvidenceRegistered):
            day = local_day(data.registered_at)
            held_day = self.evidence.get(data.item_id)
            if held_day is None or day < held_day:
                self.evidence[data.item_id] = day
        elif isinstance(data, forensics.EvidenceAnalysisRequested):
            _keep_first(self.analyses_requested, data.analysis_id, local_day(data.requested_at))
        elif isinstance(data, forensics.EvidenceAnalysisCompleted):
            _keep_first(self.analyses_completed, data.analysis_id, local_day(data.completed_at))
        # case.status_changed, custody transfers and disposals change no figure.

    def merge(self, other: CaseFacts) -> None:
        """Fold in the facts of the same case folded elsewhere (another share of the topics'
        partitions): each field by the same rule as :meth:`apply`, so merging two shares
        gives the facts of folding every event of both."""
        if other.opening is not None and (
            self.opening is None
            or (other.opening.version, other.opening.event_id)
            < (self.opening.version, self.opening.event_id)
        ):
            self.opening = other.opening
        if other.other_province is not None and _newer(
            other.other_province[0],
            other.other_province[1],
            self.other_province[:2] if self.other_province else None,
        ):
            self.other_province = other.other_province
        self.assigned_teams |= other.assigned_teams
        self.homicide_at_close = self.homicide_at_close or other.homicide_at_close
        for suspect, day in other.arrests.items():
            _keep_first(self.arrests, suspect, day)
        for suspect, day in other.charged_on.items():
            _keep_first(self.charged_on, suspect, day)
        for suspect, codes in other.charge_codes.items():
            self.charge_codes.setdefault(suspect, set()).update(codes)
        for suspect, outcome in other.outcomes.items():
            held = self.outcomes.get(suspect)
            if held is None or (outcome.decided_on, outcome.version, outcome.event_id) > (
                held.decided_on,
                held.version,
                held.event_id,
            ):
                self.outcomes[suspect] = outcome
        self.services |= other.services
        for child, at in other.first_contacts.items():
            first_contact = self.first_contacts.get(child)
            if first_contact is None or at < first_contact:
                self.first_contacts[child] = at
        for item, day in other.evidence.items():
            _keep_first(self.evidence, item, day)
        for analysis, day in other.analyses_requested.items():
            _keep_first(self.analyses_requested, analysis, day)
        for analysis, day in other.analyses_completed.items():
            _keep_first(self.analyses_completed, analysis, day)

    # -- storage ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        o = self.opening
        return {
            "o": None
            if o is None
            else [
                o.opened_on.isoformat(),
                o.referral_received_at.isoformat() if o.referral_received_at else None,
                o.province,
                list(o.concerns),
                list(o.teams),
                o.children_under_15,
                o.version,
                o.event_id,
            ],
            "p": list(self.other_province) if self.other_province else None,
            "t": sorted(self.assigned_teams),
            "h": self.homicide_at_close,
            "a": {k: v.isoformat() for k, v in self.arrests.items()},
            "c": {k: v.isoformat() for k, v in self.charged_on.items()},
            "cc": {k: sorted(v) for k, v in self.charge_codes.items()},
            "r": {
                k: [
                    v.decided_on.isoformat(),
                    v.convicted,
                    v.sentence_months,
                    list(v.offences),
                    v.version,
                    v.event_id,
                ]
                for k, v in self.outcomes.items()
            },
            "s": sorted([c, s, d.isoformat()] for c, s, d in self.services),
            "f": {k: v.isoformat() for k, v in self.first_contacts.items()},
            "e": {k: v.isoformat() for k, v in self.evidence.items()},
            "q": {k: v.isoformat() for k, v in self.analyses_requested.items()},
            "x": {k: v.isoformat() for k, v in self.analyses_completed.items()},
        }

    @classmethod
    def from_json(cls, case_id: str, doc: dict[str, Any]) -> CaseFacts:
        o = doc.get("o")
        return cls(
            case_id=case_id,
            opening=None
            if o is None
            else Opening(
                opened_on=date.fromisoformat(o[0]),
                referral_received_at=_dt(o[1]),
                province=o[2],
                concerns=tuple(o[3]),
                teams=tuple(o[4]),
                children_under_15=int(o[5]),
                version=int(o[6]),
                event_id=o[7],
            ),
            other_province=tuple(doc["p"]) if doc.get("p") else None,  # type: ignore[arg-type]
            assigned_teams=set(doc.get("t", [])),
            homicide_at_close=bool(doc.get("h", False)),
            arrests={k: date.fromisoformat(v) for k, v in doc.get("a", {}).items()},
            charged_on={k: date.fromisoformat(v) for k, v in doc.get("c", {}).items()},
            charge_codes={k: set(v) for k, v in doc.get("cc", {}).items()},
            outcomes={
                k: Outcome(
                    decided_on=date.fromisoformat(v[0]),
                    convicted=bool(v[1]),
                    sentence_months=int(v[2]),
                    offences=tuple(v[3]),
                    version=int(v[4]),
                    event_id=v[5],
                )
                for k, v in doc.get("r", {}).items()
            },
            services={(c, s, date.fromisoformat(d)) for c, s, d in doc.get("s", [])},
            first_contacts={k: datetime.fromisoformat(v) for k, v in doc.get("f", {}).items()},
            evidence={k: date.fromisoformat(v) for k, v in doc.get("e", {}).items()},
            analyses_requested={k: date.fromisoformat(v) for k, v in doc.get("q", {}).items()},
            analyses_completed={k: date.fromisoformat(v) for k, v in doc.get("x", {}).items()},
        )


def _keep_first(held: dict[str, date], key: str, day: date) -> None:
    current = held.get(key)
    if current is None or day < current:
        held[key] = day


def checked_offences(codes: list[str] | tuple[str, ...]) -> list[str]:
    bad = [i for i, code in enumerate(codes) if not OFFENCE_CODE.match(code)]
    if bad:
        raise InvalidFact(f"offence_codes: item(s) {bad[:5]} are not offence codes")
    return list(codes)


# --------------------------------------------------------------------------------- tips

#: Dispositions that mean the unit acted on the tip.
ACTIONED_DISPOSITIONS = frozenset({"actionable", "escalate"})


@_by_fields
@dataclass(slots=True)
class TipFacts:
    tip_id: str
    received_on: date | None = None
    province: tuple[int, str, str] | None = None  # (version, event id, code), newest wins
    escalated_on: date | None = None
    actioned_on: date | None = None

    def apply(self, data: EventData, version: int, event_id: str) -> None:
        code = getattr(data, "province_code", None)
        if code and _newer(version, event_id, self.province[:2] if self.province else None):
            self.province = (version, event_id, code)
        if isinstance(data, icac.TipReceived):
            self.received_on = _min(self.received_on, local_day(data.received_at))
        elif isinstance(data, icac.TipEscalated):
            day = local_day(data.escalated_at)
            self.escalated_on = _min(self.escalated_on, day)
            self.actioned_on = _min(self.actioned_on, day)
        elif isinstance(data, icac.TipClosed):
            if data.disposition in ACTIONED_DISPOSITIONS:
                self.actioned_on = _min(self.actioned_on, local_day(data.closed_at))
        # tip.triaged: only its province (above).

    def merge(self, other: TipFacts) -> None:
        """As :meth:`CaseFacts.merge`."""
        if other.province is not None and _newer(
            other.province[0], other.province[1], self.province[:2] if self.province else None
        ):
            self.province = other.province
        if other.received_on is not None:
            self.received_on = _min(self.received_on, other.received_on)
        if other.escalated_on is not None:
            self.escalated_on = _min(self.escalated_on, other.escalated_on)
        if other.actioned_on is not None:
            self.actioned_on = _min(self.actioned_on, other.actioned_on)

    def to_json(self) -> dict[str, Any]:
        return {
            "r": self.received_on.isoformat() if self.received_on else None,
            "p": list(self.province) if self.province else None,
            "e": self.escalated_on.isoformat() if self.escalated_on else None,
            "a": self.actioned_on.isoformat() if self.actioned_on else None,
        }

    @classmethod
    def from_json(cls, tip_id: str, doc: dict[str, Any]) -> TipFacts:
        return cls(
            tip_id=tip_id,
            received_on=_d(doc.get("r")),
            province=tuple(doc["p"]) if doc.get("p") else None,  # type: ignore[arg-type]
            escalated_on=_d(doc.get("e")),
            actioned_on=_d(doc.get("a")),
        )


# ----------------------------------------------------------------------------- referrals


@_by_fields
@dataclass(slots=True)
class ReferralFacts:
    referral_id: str
    received_on: date | None = None
    province: tuple[int, str, str] | None = None  # triaged province, else a child's
    teams: tuple[int, str, tuple[str, ...]] | None = None  # from the newest triage
    withdrawn_on: date | None = None

    def apply(self, data: EventData, version: int, event_id: str) -> None:
        if isinstance(data, intake.ReferralSubmitted | intake.ReferralTriaged):
            self.received_on = _min(self.received_on, local_day(data.received_at))
            if isinstance(data, intake.ReferralTriaged):
                rank = (version + 1_000_000_000, event_id)  # a triage outranks a submission
                if _newer(*rank, self.province[:2] if self.province else None):
                    self.province = (rank[0], event_id, data.province_code)
                if _newer(version, event_id, self.teams[:2] if self.teams else None):
                    self.teams = (version, event_id, tuple(sorted(set(data.teams))))
            else:
                first_child = min(data.children, key=lambda c: c.child_id)
                if _newer(version, event_id, self.province[:2] if self.province else None):
                    self.province = (version, event_id, first_child.province_code)
        elif isinstance(data, intake.ReferralWithdrawn):
            self.withdrawn_on = _min(self.withdrawn_on, local_day(data.withdrawn_at))

    def merge(self, other: ReferralFacts) -> None:
        """As :meth:`CaseFacts.merge`."""
        if other.received_on is not None:
            self.received_on = _min(self.received_on, other.received_on)
        if other.province is not None and _newer(
            other.province[0], other.province[1], self.province[:2] if self.province else None
        ):
            self.province = other.province
        if other.teams is not None and _newer(
            other.teams[0], other.teams[1], self.teams[:2] if self.teams else None
        ):
            self.teams = other.teams
        if other.withdrawn_on is not None:
            self.withdrawn_on = _min(self.withdrawn_on, other.withdrawn_on)

    def to_json(self) -> dict[str, Any]:
        return {
            "r": self.received_on.isoformat() if self.received_on else None,
            "p": list(self.province) if self.province else None,
            "t": [self.teams[0], self.teams[1], list(self.teams[2])] if self.teams else None,
            "w": self.withdrawn_on.isoformat() if self.withdrawn_on else None,
        }

    @classmethod
    def from_json(cls, referral_id: str, doc: dict[str, Any]) -> ReferralFacts:
        t = doc.get("t")
        return cls(
            referral_id=referral_id,
            received_on=_d(doc.get("r")),
            province=tuple(doc["p"]) if doc.get("p") else None,  # type: ignore[arg-type]
            teams=(int(t[0]), t[1], tuple(t[2])) if t else None,
            withdrawn_on=_d(doc.get("w")),
        )


def _min(current: date | None, day: date) -> date:
    return day if current is None or day < current else current


Facts = CaseFacts | TipFacts | ReferralFacts


def merge_facts(held: Facts, other: Facts) -> None:
    """Fold ``other`` (the same aggregate, folded from other events) into ``held``."""
    if isinstance(held, CaseFacts) and isinstance(other, CaseFacts):
        held.merge(other)
    elif isinstance(held, TipFacts) and isinstance(other, TipFacts):
        held.merge(other)
    elif isinstance(held, ReferralFacts) and isinstance(other, ReferralFacts):
        held.merge(other)
    else:
        raise TypeError(f"cannot merge {type(other).__name__} into {type(held).__name__}")


def aggregate_of(data: EventData) -> tuple[str, str] | None:
    """``(kind, pseudonymous id)`` of the aggregate an event belongs to; None: not a figure."""
    if data.event_type.startswith(("case.", "evidence.")):
        case_id = getattr(data, "case_id", None)
        return (CASE, case_id) if case_id else None
    if data.event_type.startswith("tip."):
        return TIP, data.tip_id  # type: ignore[attr-defined]
    if data.event_type.startswith("referral."):
        return REFERRAL, data.referral_id  # type: ignore[attr-defined]
    return None


def new_facts(kind: str, key: str) -> Facts:
    if kind == CASE:
        return CaseFacts(key)
    if kind == TIP:
        return TipFacts(key)
    if kind == REFERRAL:
        return ReferralFacts(key)
    raise ValueError(f"unknown aggregate kind {kind!r}")


def facts_from_json(kind: str, key: str, doc: dict[str, Any]) -> Facts:
    if kind == CASE:
        return CaseFacts.from_json(key, doc)
    if kind == TIP:
        return TipFacts.from_json(key, doc)
    if kind == REFERRAL:
        return ReferralFacts.from_json(key, doc)
    raise ValueError(f"unknown aggregate kind {kind!r}")
