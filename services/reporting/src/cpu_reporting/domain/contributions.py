"""The figures: what each aggregate's facts add to each (day, province, team set, offence set).

This module is where every figure is defined; the store only adds the contributions up.

Dimensions of a contribution
    * ``day``: the day in Cambodia (UTC+7) of the event the figure counts (below, per figure).
    * ``province``: the case's province (``case.opened``; if that has none, the newest province
      of its other events); ``""`` (shown "unknown") while nothing is known.
    * ``teams``: the set of teams on the case: teams named by ``case.opened`` plus every team it
      was ever assigned to (tips: ICAC; referrals: the teams triage named).
    * ``offences``: the set of offence codes: for figures about a case, every code it was charged
      with or convicted of; for ``charged``, the suspect's charge codes; for convictions,
      acquittals and sentences, the decision's codes (else the suspect's charge codes). Empty
      (shown "none") when nothing has been charged.
    Team and offence are sets, so a case with two offences appears under each in a breakdown by
    offence; totals count it once.

Figures (``METRICS``), each counted on the day named
    * ``referrals``: referrals received (``referral.submitted``/``triaged``), on receipt.
    * ``investigations``: cases opened (``case.opened``), on the opening day.
    * ``investigations_with_arrest``: of those, cases with at least one suspect arrested, at
      any time up to now; counted on the opening day. **Arrest rate** = investigations with an
      arrest / investigations, over cases opened in the period: "of the investigations opened
      in 2019, 87% led to an arrest". A recent period's rate rises as arrests follow.
    * ``child_homicides``: cases opened with ``homicide`` among their concerns and at least one
      child under 15 (``children_under_15`` > 0), or closed by casework with
      ``child_homicide`` set (the age became known later); counted once, on the opening day.
    * ``arrests``: suspects arrested, once per suspect per case, on the first arrest day.
    * ``charged``: suspects charged, once per suspect per case, on the first charge day.
    * ``convictions`` / ``acquittals``: suspects whose latest court decision is a conviction /
      an acquittal, on the decision day (an appeal's later decision replaces the earlier one).
    * ``sentence_months``: the sentences of those convictions (reported as years, months / 12).
    * ``svc_<type>``: victim services provided, one per (child, service type, day), by type.
    * ``evidence_items``: items registered; ``lab_analyses_requested`` / ``_completed``:
      laboratory analyses requested / completed, each on its day.
    * ``tips_received``: ICAC tips received; ``tips_escalated``: tips escalated (first
      escalation); ``tips_actioned``: tips escalated or closed as ``actionable``/``escalate``,
      on the first such day.

Children given legal representation (``DISTINCT_METRICS``)
    Distinct child pseudonyms with a ``legal_representation`` victim service dated in the
    period: not additive, so kept as (child, day) rows and counted distinct at query time.

Medians (``MEASURES``), each observed once per case on the day named
    * ``referral_to_arrest_days``: days from the referral's receipt (``referral_received_at``
      on ``case.opened``, as a day in Cambodia) to the case's first arrest; on the arrest day.
    * ``referral_to_first_contact_hours``: whole hours from receipt to the first recorded
      contact with a child of the case; on the contact day. The contract has no event for a
      first contact yet (casework records it internally); the figure is computed from
      ``case.first_contact_recorded`` (``case_id``, ``child_id``, ``contacted_at``) once that
      event is in the contract, and is empty until then.
    * ``referral_to_first_service_days``: days from receipt to the first victim service given
      to a child of the case (what the events show today of the first help a child received).
    A case opened from a tip has no referral and no such observation; negative intervals (a
    date entered wrongly) are left out rather than clamped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from cpu_reporting.domain.facts import CaseFacts, Facts, ReferralFacts, TipFacts, local_day

VICTIM_SERVICES: tuple[str, ...] = (
    "medical_care",
    "psychological_counselling",
    "legal_representation",
    "shelter",
    "family_support",
    "partner_referral",
)

METRICS: tuple[str, ...] = (
    "referrals",
    "investigations",
    "investigations_with_arrest",
    "child_homicides",
    "arrests",
    "charged",
    "convictions",
    "acquittals",
    "sentence_months",
    *(f"svc_{s}" for s in VICTIM_SERVICES),
    "evidence_items",
    "lab_analyses_requested",
    "lab_analyses_completed",
    "tips_received",
    "tips_actioned",
    "tips_escalated",
)
METRIC_INDEX = {name: i for i, name in enumerate(METRICS)}

MEASURES: tuple[str, ...] = (
    "referral_to_arrest_days",
    "referral_to_first_contact_hours",
    "referral_to_first_service_days",
)

DISTINCT_METRICS: tuple[str, ...] = ("children_legal_representation",)

UNKNOWN = ""  # province not known / no team / no offence
#: In a cube key (:func:`cube_keys`): every value of the dimension, each case counted once.
ALL = "*"


def set_key(values: Iterable[str]) -> str:
    """A set as one string, ``|A|B|`` (sorted), ``""`` when empty; ``LIKE '%|A|%'`` finds A."""
    items = sorted(set(values))
    return "|" + "|".join(items) + "|" if items else ""


def set_members(key: str) -> list[str]:
    return [v for v in key.split("|") if v]


def cube_keys(province: str, teams: str, offences: str) -> list[tuple[str, str, str]]:
    """The ``(province, team, offence)`` cube keys a figure of these dimensions adds to.

    Team and offence are single members here (``""`` for an empty set), or :data:`ALL`. A
    summary then reads its total, each breakdown and each filter as a handful of rows by
    equality, instead of scanning every set-keyed cell of the period: ``(P, T, O)`` is the
    total under filters P, T, O (ALL when absent), ``(p, T, O)`` for each p the breakdown by
    province, ``(P, t, O)`` by team, ``(P, T, o)`` by offence. A figure adds the same amount to
    every key, so a case with two offences is under each offence and once under ALL, exactly as
    the set-keyed breakdowns count it.
    """
    provinces = (province, ALL)
    team_keys = (*(set_members(teams) or [UNKNOWN]), ALL)
    offence_keys = (*(set_members(offences) or [UNKNOWN]), ALL)
    return [(p, t, o) for p in provinces for t in team_keys for o in offence_keys]


def margin_keys(province: str, teams: str, offences: str) -> list[tuple[str, str, str]]:
    """The cube keys with at most one dimension not :data:`ALL` that a figure of these
    dimensions adds to: the total, and its place in each breakdown of an unfiltered summary."""
    return [
        (ALL, ALL, ALL),
        (province, ALL, ALL),
        *((ALL, t, ALL) for t in set_members(teams) or [UNKNOWN]),
        *((ALL, ALL, o) for o in set_members(offences) or [UNKNOWN]),
    ]


#: ``prev`` of a child's first day under a cube key: before every period.
NO_PREVIOUS = date.min

#: A row of the distinct-children cube: (province, team, offence, grain, period, prev).
ChildKey = tuple[str, str, str, str, date, date]


def first_days(days_with_dims: Iterable[tuple[date, str, str, str]]) -> dict[ChildKey, int]:
    """One child's rows of the distinct-children cube, from the days and dimensions of its
    rows of one distinct figure (every case it appears in).

    A child is counted in ``[start, end]`` under a cube key when one of its days under that key
    falls in the period; counting, of those days, only the ones whose previous day under the
    key (``prev``) is before ``start`` counts each child once. So each day becomes a row
    ``(key, grain, period, prev)`` adding 1, and a read sums ``n`` over the periods of its
    segments where ``prev < start``: additive, and its size follows the periods and keys, not
    the number of children. Grain ``d`` keeps every day; ``m`` (``y``) only the days whose
    previous day is in an earlier month (year): a later one is never before a whole month's
    (year's) query start.
    """
    by_dims: dict[tuple[str, str, str], set[date]] = {}
    for day, province, teams, offences in days_with_dims:
        by_dims.setdefault((province, teams, offences), set()).add(day)
    # Each (key, grain, period, prev) comes from one day at most: every count is 1.
    if len(by_dims) == 1:  # the usual child: one case, or cases alike
        ((dims, days),) = by_dims.items()
        pattern = _day_rows(sorted(days))
        return {(*key, *row): 1 for key in cube_keys(*dims) for row in pattern}
    by_key: dict[tuple[str, str, str], set[date]] = {}
    for dims, days in by_dims.items():
        for key in cube_keys(*dims):
            by_key.setdefault(key, set()).update(days)
    rows: dict[ChildKey, int] = {}
    patterns: dict[tuple[date, ...], list[tuple[str, date, date]]] = {}
    for key, key_days in by_key.items():
        ordered = tuple(sorted(key_days))
        shared = patterns.get(ordered)
        if shared is None:
            shared = patterns[ordered] = _day_rows(ordered)
        for row in shared:
            rows[(*key, *row)] = 1
    return rows


def _day_rows(days: Iterable[date]) -> list[tuple[str, date, date]]:
    """(grain, period, prev) of each of a child's days under one key, oldest first."""
    out: list[tuple[str, date, date]] = []
    prev = NO_PREVIOUS
    for day in days:
        out.append(("d", day, prev))
        month = day.replace(day=1)
        if prev < month:
            out.append(("m", month, prev))
            year = month.replace(month=1)
            if prev < year:
                out.append(("y", year, prev))
        prev = day
    return out


@dataclass(frozen=True, slots=True)
class Dims:
    province: str
    teams: str
    offences: str


class Sink(Protocol):
    def count(self, day: date, dims: Dims, metric: str, n: int = 1) -> None: ...
    def observe(self, day: date, dims: Dims, measure: str, value: int) -> None: ...
    def distinct(self, metric: str, subject: str, day: date, dims: Dims, source: str) -> None: ...


@dataclass
class Contribution:
    """A Sink that keeps everything: used to compare an aggregate's figures before and after."""

    counts: dict[tuple[date, Dims], list[int]] = field(default_factory=dict)
    durations: dict[tuple[date, Dims, str, int], int] = field(default_factory=dict)
    distincts: set[tuple[str, str, date, Dims, str]] = field(default_factory=set)

    def count(self, day: date, dims: Dims, metric: str, n: int = 1) -> None:
        row = self.counts.get((day, dims))
        if row is None:
            row = self.counts[(day, dims)] = [0] * len(METRICS)
        row[METRIC_INDEX[metric]] += n

    def observe(self, day: date, dims: Dims, measure: str, value: int) -> None:
        key = (day, dims, measure, value)
        self.durations[key] = self.durations.get(key, 0) + 1

    def distinct(self, metric: str, subject: str, day: date, dims: Dims, source: str) -> None:
        self.distincts.add((metric, subject, day, dims, source))


def contribute(facts: Facts, sink: Sink) -> None:
    """Add everything ``facts`` contributes to the figures into ``sink``."""
    if isinstance(facts, CaseFacts):
        _case(facts, sink)
    elif isinstance(facts, TipFacts):
        _tip(facts, sink)
    elif isinstance(facts, ReferralFacts):
        _referral(facts, sink)


def contribution(facts: Facts | None) -> Contribution:
    out = Contribution()
    if facts is not None:
        contribute(facts, out)
    return out


def _case(c: CaseFacts, sink: Sink) -> None:
    province = c.province or UNKNOWN
    teams = set_key(c.teams)
    case_dims = Dims(province, teams, set_key(c.offences))
    opening = c.opening
    if opening is not None:
        day = opening.opened_on
        sink.count(day, case_dims, "investigations")
        if c.arrests:
            sink.count(day, case_dims, "investigations_with_arrest")
        if c.is_child_homicide:
            sink.count(day, case_dims, "child_homicides")
    for arrested_on in c.arrests.values():
        sink.count(arrested_on, case_dims, "arrests")
    for suspect, charged_on in c.charged_on.items():
        codes = c.charge_codes.get(suspect, set())
        sink.count(charged_on, Dims(province, teams, set_key(codes)), "charged")
    for suspect, outcome in c.outcomes.items():
        decided = outcome.offences or tuple(c.charge_codes.get(suspect, ()))
        dims = Dims(province, teams, set_key(decided))
        if outcome.convicted:
            sink.count(outcome.decided_on, dims, "convictions")
            if outcome.sentence_months:
                sink.count(outcome.decided_on, dims, "sentence_months", outcome.sentence_months)
        else:
            sink.count(outcome.decided_on, dims, "acquittals")
    first_service: date | None = None
    for child, service, provided_on in c.services:
        sink.count(provided_on, case_dims, f"svc_{service}")
        if service == "legal_representation":
            sink.distinct("children_legal_representation", child, provided_on, case_dims, c.case_id)
        if first_service is None or provided_on < first_service:
            first_service = provided_on
    for registered_on in c.evidence.values():
        sink.count(registered_on, case_dims, "evidence_items")
    for requested_on in c.analyses_requested.values():
        sink.count(requested_on, case_dims, "lab_analyses_requested")
    for completed_on in c.analyses_completed.values():
        sink.count(completed_on, case_dims, "lab_analyses_completed")
    # Medians: intervals from the referral's receipt.
    received_at = opening.referral_received_at if opening else None
    if received_at is None:
        return
    received_on = local_day(received_at)
    if c.arrests:
        first_arrest = min(c.arrests.values())
        days = (first_arrest - received_on).days
        if days >= 0:
            sink.observe(first_arrest, case_dims, "referral_to_arrest_days", days)
    if c.first_contacts:
        first_contact = min(c.first_contacts.values())
        hours = int((first_contact - received_at).total_seconds() // 3600)
        if hours >= 0:
            sink.observe(
                local_day(first_contact), case_dims, "referral_to_first_contact_hours", hours
            )
    if first_service is not None:
        days = (first_service - received_on).days
        if days >= 0:
            sink.observe(first_service, case_dims, "referral_to_first_service_days", days)


_ICAC = set_key(["ICAC"])


def _tip(t: TipFacts, sink: Sink) -> None:
    dims = Dims(t.province[2] if t.province else UNKNOWN, _ICAC, UNKNOWN)
    if t.received_on is not None:
        sink.count(t.received_on, dims, "tips_received")
    if t.escalated_on is not None:
        sink.count(t.escalated_on, dims, "tips_escalated")
    if t.actioned_on is not None:
        sink.count(t.actioned_on, dims, "tips_actioned")


def _referral(r: ReferralFacts, sink: Sink) -> None:
    if r.received_on is None:
        return
    dims = Dims(
        r.province[2] if r.province else UNKNOWN,
        set_key(r.teams[2]) if r.teams else UNKNOWN,
        UNKNOWN,
    )
    sink.count(r.received_on, dims, "referrals")


@dataclass
class Delta:
    """What to add to the stored figures when an aggregate changes from ``old`` to ``new``."""

    counts: dict[tuple[date, Dims], list[int]] = field(default_factory=dict)
    durations: dict[tuple[date, Dims, str, int], int] = field(default_factory=dict)
    distinct_removed: set[tuple[str, str, date, Dims, str]] = field(default_factory=set)
    distinct_added: set[tuple[str, str, date, Dims, str]] = field(default_factory=set)

    def add(self, old: Contribution, new: Contribution) -> None:
        for key in old.counts.keys() | new.counts.keys():
            before = old.counts.get(key)
            after = new.counts.get(key)
            diff = [
                (after[i] if after else 0) - (before[i] if before else 0)
                for i in range(len(METRICS))
            ]
            if any(diff):
                row = self.counts.get(key)
                if row is None:
                    self.counts[key] = diff
                else:
                    for i, d in enumerate(diff):
                        row[i] += d
        for dkey in old.durations.keys() | new.durations.keys():
            d = new.durations.get(dkey, 0) - old.durations.get(dkey, 0)
            if d:
                self.durations[dkey] = self.durations.get(dkey, 0) + d
        self.distinct_removed |= old.distincts - new.distincts
        self.distinct_added |= new.distincts - old.distincts
