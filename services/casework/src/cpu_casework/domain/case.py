"""The ``Case`` aggregate: one child-protection case, from opening to closure and beyond.

A case is opened from a triaged referral or an escalated ICAC tip (:meth:`Case.open`). Every
command is a method that checks the rules of its concept (:mod:`~.lifecycle`,
:mod:`~.assignment`, :mod:`~.outcomes`, :mod:`~.victim_services`), changes the case, bumps
:attr:`Case.version` once and records domain events (:mod:`~.events`) in :attr:`Case.events`
for the service layer to publish. A command that would only repeat what the case already holds
(a retried request, a redelivered message) changes nothing and returns ``None``/``False``; one
that contradicts it raises. Nothing here reads a clock, a database or the network: the service
passes ``now`` and ids in.

The adapter may rebuild a stored case by calling the constructor with every field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from cpu_casework.domain import events as ev
from cpu_casework.domain import lifecycle
from cpu_casework.domain.assignment import HIT, Assignment, plan_assignment
from cpu_casework.domain.errors import (
    DuplicateRecord,
    InvalidValue,
    UnknownChild,
    UnknownSuspect,
)
from cpu_casework.domain.offences import OffenceTable, default_offence_table
from cpu_casework.domain.outcomes import (
    CONVICTED,
    Arrest,
    Charge,
    CourtOutcome,
    Sentence,
    Suspect,
    SuspectNotCharged,
    check_sentence,
    is_child_homicide,
)
from cpu_casework.domain.values import (
    CONCERNS,
    PRIORITIES,
    SEXES,
    TEAMS,
    check_fact_date,
    optional_text,
    require_aware,
    require_choice,
    require_id,
    require_province,
    require_reason_code,
)
from cpu_casework.domain.victim_services import VictimServiceRecord, check_provider

ORIGINS: tuple[str, ...] = ("referral", "tip")


class _CycleRecord(Protocol):
    @property
    def cycle(self) -> int: ...


_R = TypeVar("_R", bound=_CycleRecord)


@dataclass(frozen=True)
class Child:
    """A child as a referral names them: a pseudonymous id, age in years, sex."""

    child_id: str
    age_years: int | None = None
    sex: str = "unknown"

    def __post_init__(self) -> None:
        require_id(self.child_id, "child_id")
        if self.age_years is not None and (
            not isinstance(self.age_years, int)
            or isinstance(self.age_years, bool)
            or not 0 <= self.age_years <= 17
        ):
            raise InvalidValue("age_years", "a child's age is 0 to 17 years")
        require_choice(self.sex, SEXES, "sex")


@dataclass
class CaseChild:
    """A child on the case: who, since when (the referral that named them), first contact."""

    child_id: str
    age_years: int | None
    sex: str
    referred_at: datetime
    referral_id: str | None = None
    first_contact_at: datetime | None = None
    first_contact_by: str | None = None


@dataclass(frozen=True)
class StatusTransition:
    from_status: str
    to_status: str
    at: datetime
    by: str
    reason_code: str
    reason_text: str | None
    cycle: int


@dataclass(frozen=True)
class LinkedReferral:
    referral_id: str
    received_at: datetime
    linked_at: datetime
    linked_by: str


def _unique(values: Iterable[str], choices: tuple[str, ...], field_name: str) -> list[str]:
    if isinstance(values, str):
        raise InvalidValue(field_name, "must be a list")
    seen: dict[str, None] = {}
    for value in values:
        seen[require_choice(value, choices, field_name)] = None
    return list(seen)


@dataclass(eq=False)
class Case:
    case_id: str
    origin: str
    origin_id: str
    priority: str
    province_code: str | None
    opened_at: datetime
    referral_received_at: datetime | None = None
    concerns: list[str] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    status: str = lifecycle.OPEN
    version: int = 0
    # Incremented on each reopening; arrests, charges and outcomes count in their own cycle.
    cycle: int = 1
    child_homicide: bool = False
    children: dict[str, CaseChild] = field(default_factory=dict)
    linked_referrals: list[LinkedReferral] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    suspects: dict[str, Suspect] = field(default_factory=dict)
    arrests: list[Arrest] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    court_outcomes: list[CourtOutcome] = field(default_factory=list)
    victim_services: list[VictimServiceRecord] = field(default_factory=list)
    transitions: list[StatusTransition] = field(default_factory=list)
    events: list[ev.Event] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ opening and linking

    @classmethod
    def open(
        cls,
        *,
        case_id: str,
        origin: str,
        origin_id: str,
        opened_at: datetime,
        priority: str,
        province_code: str | None,
        concerns: Iterable[str] = (),
        teams: Iterable[str] = (),
        children: Iterable[Child] = (),
        referral_received_at: datetime | None = None,
    ) -> Case:
        """Open a case from a triaged referral (``origin="referral"``) or an escalated tip."""
        require_id(case_id, "case_id")
        require_choice(origin, ORIGINS, "origin")
        require_id(origin_id, "origin_id")
        opened_at = require_aware(opened_at, "opened_at")
        require_choice(priority, PRIORITIES, "priority")
        if province_code is not None:
            require_province(province_code)
        if referral_received_at is not None:
            referral_received_at = require_aware(referral_received_at, "referral_received_at")
        elif origin == "referral":
            raise InvalidValue("referral_received_at", "a referral's received time is required")
        case = cls(
            case_id=case_id,
            origin=origin,
            origin_id=origin_id,
            priority=priority,
            province_code=province_code,
            opened_at=opened_at,
            referral_received_at=referral_received_at,
            concerns=_unique(concerns, CONCERNS, "concerns"),
            teams=_unique(teams, TEAMS, "teams"),
        )
        referred_at = referral_received_at or opened_at
        referral_id = origin_id if origin == "referral" else None
        for child in children:
            if child.child_id in case.children:
                raise InvalidValue("children", f"child {child.child_id} is named twice")
            case.children[child.child_id] = CaseChild(
                child.child_id, child.age_years, child.sex, referred_at, referral_id
            )
        case.child_homicide = is_child_homicide(
            case.concerns, [c.age_years for c in case.children.values()]
        )
        if case.child_homicide and HIT not in case.teams:
            case.teams.append(HIT)
        case.version = 1
        case.events.append(
            ev.CaseOpened(
                case_id=case_id,
                origin=origin,
                origin_id=origin_id,
                opened_at=opened_at,
                referral_received_at=referral_received_at,
                priority=priority,
                province_code=province_code,
                concerns=tuple(case.concerns),
                teams=tuple(case.teams),
                child_ids=tuple(case.children),
                children_under_15=case.children_under_15,
                child_homicide=case.child_homicide,
            )
        )
        if case.child_homicide:
            case.events.append(
                ev.ChildHomicideFlagged(
                    case_id=case_id, flagged_at=opened_at, assigned_to_hit=False
                )
            )
        return case

    @property
    def referral_ids(self) -> list[str]:
        """Every referral on the case: the one it was opened from, then the linked ones."""
        ids = [self.origin_id] if self.origin == "referral" else []
        return ids + [link.referral_id for link in self.linked_referrals]

    def link_referral(
        self,
        *,
        referral_id: str,
        received_at: datetime,
        priority: str,
        now: datetime,
        concerns: Iterable[str] = (),
        children: Iterable[Child] = (),
        teams: Iterable[str] = (),
        by: str = "system",
    ) -> bool:
        """Link a further referral of a child already on this case (intake said "same child").

        Idempotent: a referral already on the case changes nothing (returns False). Otherwise
        new children and concerns join the case, the teams named are added, and the priority
        rises if the new referral is more urgent (it never falls). Allowed in any status: a
        closed case keeps the new referral on record, and a supervisor decides on reopening.
        """
        require_id(referral_id, "referral_id")
        received_at = require_aware(received_at, "received_at")
        now = require_aware(now, "now")
        require_choice(priority, PRIORITIES, "priority")
        require_id(by, "by")
        new_concerns = _unique(concerns, CONCERNS, "concerns")
        new_teams = _unique(teams, TEAMS, "teams")
        children = list(children)
        lifecycle.check_recordable("referral_link", self.status)
        if referral_id in self.referral_ids:
            return False
        added_children: list[str] = []
        for child in children:
            known = self.children.get(child.child_id)
            if known is None:
                self.children[child.child_id] = CaseChild(
                    child.child_id, child.age_years, child.sex, received_at, referral_id
                )
                added_children.append(child.child_id)
            elif child.age_years is not None:
                known.age_years = child.age_years  # the later referral knows the child's age now
        added_concerns = [c for c in new_concerns if c not in self.concerns]
        self.concerns.extend(added_concerns)
        self.teams.extend(t for t in new_teams if t not in self.teams)
        raised = PRIORITIES.index(priority) < PRIORITIES.index(self.priority)
        if raised:
            self.priority = priority
        self.linked_referrals.append(LinkedReferral(referral_id, received_at, now, by))
        self._changed(
            ev.ReferralLinked(
                case_id=self.case_id,
                referral_id=referral_id,
                linked_at=now,
                new_child_ids=tuple(added_children),
                new_concerns=tuple(added_concerns),
                priority=self.priority,
                priority_raised=raised,
            )
        )
        self._update_child_homicide(now)
        return True

    def add_child(self, child: Child, *, referred_at: datetime, by: str, now: datetime) -> bool:
        """Add a child identified during the investigation (e.g. a victim of a tip's images)."""
        referred_at = require_aware(referred_at, "referred_at")
        now = require_aware(now, "now")
        require_id(by, "by")
        if child.child_id in self.children:
            return False
        self.children[child.child_id] = CaseChild(
            child.child_id, child.age_years, child.sex, referred_at
        )
        self._changed(ev.ChildAdded(case_id=self.case_id, child_id=child.child_id, added_at=now))
        self._update_child_homicide(now)
        return True

    def _update_child_homicide(self, now: datetime) -> None:
        if self.child_homicide:
            return
        ages = [child.age_years for child in self.children.values()]
        if not is_child_homicide(self.concerns, ages):
            return
        self.child_homicide = True
        if HIT not in self.teams:
            self.teams.append(HIT)
        self.events.append(
            ev.ChildHomicideFlagged(
                case_id=self.case_id, flagged_at=now, assigned_to_hit=self.lead_team == HIT
            )
        )

    @property
    def children_under_15(self) -> int:
        return sum(
            1 for c in self.children.values() if c.age_years is not None and c.age_years < 15
        )

    @property
    def needs_hit_assignment(self) -> bool:
        """A child-homicide case not (yet) led by HIT: the service alerts a supervisor."""
        return self.child_homicide and self.lead_team != HIT

    # ------------------------------------------------------------------ assignment

    @property
    def current_assignment(self) -> Assignment | None:
        return self.assignments[-1] if self.assignments else None

    @property
    def lead_team(self) -> str | None:
        current = self.current_assignment
        return current.team if current is not None else None

    def assign(
        self,
        team: str,
        *,
        by: str,
        now: datetime,
        investigator_id: str | None = None,
        investigator_province_code: str | None = None,
        reason_code: str | None = None,
        reason_text: str | None = None,
    ) -> Assignment | None:
        """Assign (or reassign, with a reason) the case; None if nothing changes."""
        now = require_aware(now, "now")
        lifecycle.check_recordable("assignment", self.status)
        assignment = plan_assignment(
            current=self.current_assignment,
            case_province_code=self.province_code,
            child_homicide=self.child_homicide,
            team=team,
            investigator_id=investigator_id,
            investigator_province_code=investigator_province_code,
            by=by,
            now=now,
            reason_code=reason_code,
            reason_text=reason_text,
        )
        if assignment is None:
            return None
        self.assignments.append(assignment)
        if team not in self.teams:
            self.teams.append(team)
        self._changed(
            ev.CaseAssigned(
                case_id=self.case_id,
                team=assignment.team,
                investigator_id=assignment.investigator_id,
                province_code=assignment.province_code,
                reassignment=assignment.reassignment,
                reason_code=assignment.reason_code,
                assigned_at=now,
                assigned_by=by,
            )
        )
        return assignment

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_closed(self) -> bool:
        return lifecycle.is_closed(self.status)

    def allowed_transitions(self) -> list[str]:
        return lifecycle.allowed_transitions(self.status)

    def facts(self) -> lifecycle.CaseFacts:
        """What the lifecycle needs, counted in the current cycle."""
        outcomes = self._cycle(self.court_outcomes)
        decided = {o.suspect_id for o in outcomes}
        charged = {c.suspect_id for c in self._cycle(self.charges)}
        convictions = sum(1 for o in outcomes if o.outcome == CONVICTED)
        return lifecycle.CaseFacts(
            has_assignment=self.current_assignment is not None,
            suspects=len(self.suspects),
            arrests=len(self._cycle(self.arrests)),
            charges=len(self._cycle(self.charges)),
            convictions=convictions,
            acquittals=len(outcomes) - convictions,
            charged_suspects_without_outcome=len(charged - decided),
        )

    def transition(
        self,
        to_status: str,
        *,
        by: str,
        now: datetime,
        reason_code: str,
        reason_text: str | None = None,
    ) -> StatusTransition:
        """Move the case to ``to_status``; raises ``IllegalTransition`` & co. (see lifecycle)."""
        now = require_aware(now, "now")
        require_id(by, "by")
        code = require_reason_code(reason_code)
        text = optional_text(reason_text, "reason_text")
        lifecycle.check_transition(self.status, to_status, self.facts(), reason_text=text)
        if to_status == lifecycle.REOPENED:
            self.cycle += 1
        record = StatusTransition(self.status, to_status, now, by, code, text, self.cycle)
        self.transitions.append(record)
        self.status = to_status
        changed = ev.CaseStatusChanged(
            case_id=self.case_id,
            from_status=record.from_status,
            to_status=to_status,
            reason_code=code,
            changed_at=now,
            changed_by=by,
        )
        if lifecycle.is_closed(to_status):
            closed = ev.CaseClosed(
                case_id=self.case_id,
                status=to_status,
                closed_at=now,
                child_homicide=self.child_homicide,
            )
            self._changed(changed, closed)
        else:
            self._changed(changed)
        return record

    # ------------------------------------------------------------------ outcomes

    def add_suspect(
        self, suspect_id: str, *, details_ref: str, by: str, now: datetime
    ) -> Suspect | None:
        """Put a suspect on the case; ``details_ref`` is the adapter's sealed details."""
        require_id(suspect_id, "suspect_id")
        if not isinstance(details_ref, str) or not details_ref:
            raise InvalidValue("details_ref", "the sealed details reference is required")
        require_id(by, "by")
        now = require_aware(now, "now")
        lifecycle.check_recordable("suspect", self.status)
        if suspect_id in self.suspects:
            return None
        suspect = Suspect(suspect_id, details_ref, now, by)
        self.suspects[suspect_id] = suspect
        self._changed(
            ev.SuspectIdentified(case_id=self.case_id, suspect_id=suspect_id, identified_at=now)
        )
        return suspect

    def record_arrest(
        self, suspect_id: str, *, arrested_on: object, by: str, now: datetime
    ) -> Arrest | None:
        now = require_aware(now, "now")
        require_id(by, "by")
        self._suspect(suspect_id)
        day = check_fact_date(arrested_on, "arrested_on", now=now, opened_at=self.opened_at)
        lifecycle.check_recordable("arrest", self.status)
        if any(
            a.suspect_id == suspect_id and a.arrested_on == day for a in self._cycle(self.arrests)
        ):
            return None
        arrest = Arrest(suspect_id, day, now, by, self.cycle)
        self.arrests.append(arrest)
        self._changed(
            ev.CaseSuspectArrested(
                case_id=self.case_id,
                suspect_id=suspect_id,
                arrested_on=day,
                province_code=self.province_code,
            )
        )
        return arrest

    def record_charge(
        self,
        suspect_id: str,
        *,
        offence_codes: Iterable[str],
        charged_on: object,
        by: str,
        now: datetime,
        offences: OffenceTable | None = None,
    ) -> Charge | None:
        now = require_aware(now, "now")
        require_id(by, "by")
        self._suspect(suspect_id)
        codes = (offences or default_offence_table()).validate(offence_codes)
        day = check_fact_date(charged_on, "charged_on", now=now, opened_at=self.opened_at)
        lifecycle.check_recordable("charge", self.status)
        if any(
            c.suspect_id == suspect_id
            and c.charged_on == day
            and set(c.offence_codes) == set(codes)
            for c in self._cycle(self.charges)
        ):
            return None
        charge = Charge(suspect_id, codes, day, now, by, self.cycle)
        self.charges.append(charge)
        self._changed(
            ev.CaseCharged(
                case_id=self.case_id, suspect_id=suspect_id, offence_codes=codes, charged_on=day
            )
        )
        return charge

    def record_court_outcome(
        self,
        suspect_id: str,
        *,
        outcome: str,
        decided_on: object,
        by: str,
        now: datetime,
        offence_codes: Iterable[str] | None = None,
        sentence: Sentence | None = None,
        offences: OffenceTable | None = None,
    ) -> CourtOutcome | None:
        """Record the court's decision for one charged suspect.

        ``offence_codes`` default to the suspect's charges in this cycle; the court may
        requalify, so other codes from the table are accepted too.
        """
        now = require_aware(now, "now")
        require_id(by, "by")
        self._suspect(suspect_id)
        check_sentence(outcome, sentence)
        charges = [c for c in self._cycle(self.charges) if c.suspect_id == suspect_id]
        if offence_codes is None:
            codes = tuple(dict.fromkeys(code for c in charges for code in c.offence_codes))
        else:
            codes = (offences or default_offence_table()).validate(offence_codes)
        day = check_fact_date(decided_on, "decided_on", now=now, opened_at=self.opened_at)
        lifecycle.check_recordable("court_outcome", self.status)
        if not charges:
            raise SuspectNotCharged(suspect_id)
        first_charged = min(c.charged_on for c in charges)
        if day < first_charged:
            raise InvalidValue(
                "decided_on",
                f"{day.isoformat()} is before the charge ({first_charged.isoformat()})",
            )
        record = CourtOutcome(suspect_id, outcome, codes, sentence, day, now, by, self.cycle)
        for existing in self._cycle(self.court_outcomes):
            if existing.suspect_id == suspect_id:
                if (
                    existing.outcome,
                    existing.offence_codes,
                    existing.sentence,
                    existing.decided_on,
                ) == (
                    outcome,
                    codes,
                    sentence,
                    day,
                ):
                    return None
                raise DuplicateRecord(
                    f"suspect {suspect_id} already has a court outcome in this cycle"
                )
        self.court_outcomes.append(record)
        self._changed(
            ev.CaseCourtOutcomeRecorded(
                case_id=self.case_id,
                suspect_id=suspect_id,
                outcome=outcome,
                offence_codes=codes,
                sentence_months=record.sentence_months,
                decided_on=day,
            )
        )
        return record

    # ------------------------------------------------------------------ victim services

    def record_victim_service(
        self,
        child_id: str,
        *,
        service: str,
        provider_code: str,
        provided_on: object,
        by: str,
        now: datetime,
    ) -> VictimServiceRecord | None:
        now = require_aware(now, "now")
        require_id(by, "by")
        self._child(child_id)
        provider = check_provider(service, provider_code)
        day = check_fact_date(provided_on, "provided_on", now=now)
        lifecycle.check_recordable("victim_service", self.status)
        record = VictimServiceRecord(child_id, service, provider, day, now, by)
        if any(existing.same_service(record) for existing in self.victim_services):
            return None
        self.victim_services.append(record)
        self._changed(
            ev.CaseVictimServiceProvided(
                case_id=self.case_id,
                child_id=child_id,
                service=service,
                provider_code=provider,
                provided_on=day,
            )
        )
        return record

    # ------------------------------------------------------------------ first contact

    def record_first_contact(
        self, child_id: str, *, contacted_at: datetime, by: str, now: datetime
    ) -> bool:
        """Record the first contact with a child, which closes their first-contact task."""
        now = require_aware(now, "now")
        contacted_at = require_aware(contacted_at, "contacted_at")
        require_id(by, "by")
        child = self._child(child_id)
        if contacted_at > now:
            raise InvalidValue("contacted_at", "is in the future")
        lifecycle.check_recordable("first_contact", self.status)
        if child.first_contact_at is not None:
            if child.first_contact_at == contacted_at:
                return False
            raise DuplicateRecord(f"first contact with child {child_id} is already recorded")
        child.first_contact_at = contacted_at
        child.first_contact_by = by
        self._changed(
            ev.FirstContactRecorded(
                case_id=self.case_id, child_id=child_id, contacted_at=contacted_at
            )
        )
        return True

    # ------------------------------------------------------------------ plumbing

    def pull_events(self) -> list[ev.Event]:
        """The events recorded since the last pull, oldest first; the list is emptied."""
        pulled, self.events = self.events, []
        return pulled

    def _changed(self, *events: ev.Event) -> None:
        self.version += 1
        self.events.extend(events)

    def _cycle(self, records: list[_R]) -> list[_R]:
        return [r for r in records if r.cycle == self.cycle]

    def _suspect(self, suspect_id: str) -> Suspect:
        try:
            return self.suspects[suspect_id]
        except KeyError:
            raise UnknownSuspect(suspect_id) from None

    def _child(self, child_id: str) -> CaseChild:
        try:
            return self.children[child_id]
        except KeyError:
            raise UnknownChild(child_id) from None
