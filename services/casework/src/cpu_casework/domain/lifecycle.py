"""The case lifecycle: the only legal status transitions, and what each one requires.

Transition table (every row is one legal transition; anything else raises
:class:`IllegalTransition` listing the targets allowed from the current status)::

    from                 to                   requires (facts on the case)
    -------------------  -------------------  ---------------------------------------------
    open                 under_investigation  case_assigned
    open                 closed_unfounded     reason_text
    open                 closed_transferred   reason_text
    under_investigation  suspect_identified   suspect_recorded
    under_investigation  closed_unfounded     reason_text
    under_investigation  closed_transferred   reason_text
    suspect_identified   arrest_made          arrest_recorded
    suspect_identified   closed_unfounded     reason_text
    suspect_identified   closed_transferred   reason_text
    arrest_made          charged              charge_recorded
    arrest_made          closed_transferred   reason_text
    charged              in_court             -
    charged              closed_transferred   reason_text
    in_court             closed_convicted     conviction_recorded, outcome_for_every_charged_suspect
    in_court             closed_acquitted     acquittal_only, outcome_for_every_charged_suspect
    in_court             closed_transferred   reason_text
    reopened             under_investigation  case_assigned
    reopened             closed_transferred   reason_text
    closed_convicted     reopened             reason_text
    closed_acquitted     reopened             reason_text
    closed_unfounded     reopened             reason_text
    closed_transferred   reopened             reason_text

Open statuses: open, under_investigation, suspect_identified, arrest_made, charged, in_court,
reopened. Closed statuses: closed_convicted, closed_acquitted, closed_unfounded,
closed_transferred. A transition into a closed status also records ``CaseClosed``.

Requirements:

* ``case_assigned`` - the case has a current assignment (a team, and usually an investigator).
* ``suspect_recorded`` - at least one suspect is on the case.
* ``arrest_recorded`` / ``charge_recorded`` - at least one arrest / charge recorded in the
  current cycle (since the case was opened, or last reopened).
* ``conviction_recorded`` - at least one ``convicted`` court outcome in the current cycle.
* ``acquittal_only`` - at least one court outcome in the current cycle, none of them
  ``convicted`` (a case with any conviction closes as ``closed_convicted``).
* ``outcome_for_every_charged_suspect`` - every suspect charged in the current cycle has a
  court outcome in it: a case is not closed while a co-accused still awaits judgment.
* ``reason_text`` - the discretionary decisions (unfounded, transferred, reopened) need a
  written reason besides the reason code; a missing one is :class:`~.errors.ReasonRequired`.

Every transition carries who (``by``), when (the service's clock) and why: a ``reason_code``
(lower snake case; the only part that goes into events) and an optional ``reason_text`` (kept on
the case for the timeline and auditors, never published).

Design choices:

* The path is strictly forward. A suspect ruled out, or released without charge, leaves the
  case where it is until a new suspect is arrested or the case is closed as unfounded (before
  an arrest) or transferred; there are no backward edges, which keeps every status honest about
  what has happened and keeps the table small enough to audit.
* Reopening starts a new cycle: suspects stay (they were identified), but the arrests, charges
  and court outcomes that justify ``arrest_made``, ``charged`` and the closures must be
  recorded again in the new cycle, so a reopened case cannot be re-closed as convicted on the
  strength of the old judgment.
* ``closed_unfounded`` is not reachable once someone is arrested: after an arrest the courts
  decide; the case closes through them or is transferred.

Which facts may be recorded in which status (:data:`RECORDABLE_IN`)::

    suspect         any open status
    arrest          suspect_identified, arrest_made, charged, in_court
    charge          arrest_made, charged, in_court
    court_outcome   in_court
    assignment      any open status
    victim_service  any status (support goes on after a case is closed)
    first_contact   any status
    referral_link   any status (a further referral of the same child is never lost)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import get_args

from cpu_casework.domain.errors import (
    CaseworkError,
    InvalidValue,
    NotAllowedInStatus,
    ReasonRequired,
)
from cpu_shared.contracts.codes import CaseStatus

STATUSES: tuple[str, ...] = get_args(CaseStatus)

OPEN = "open"
UNDER_INVESTIGATION = "under_investigation"
SUSPECT_IDENTIFIED = "suspect_identified"
ARREST_MADE = "arrest_made"
CHARGED = "charged"
IN_COURT = "in_court"
CLOSED_CONVICTED = "closed_convicted"
CLOSED_ACQUITTED = "closed_acquitted"
CLOSED_UNFOUNDED = "closed_unfounded"
CLOSED_TRANSFERRED = "closed_transferred"
REOPENED = "reopened"

CLOSED_STATUSES: frozenset[str] = frozenset(
    {CLOSED_CONVICTED, CLOSED_ACQUITTED, CLOSED_UNFOUNDED, CLOSED_TRANSFERRED}
)
OPEN_STATUSES: frozenset[str] = frozenset(STATUSES) - CLOSED_STATUSES

# The table of the module docstring, as data. Order of targets = order shown to officers.
TRANSITIONS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        OPEN: (UNDER_INVESTIGATION, CLOSED_UNFOUNDED, CLOSED_TRANSFERRED),
        UNDER_INVESTIGATION: (SUSPECT_IDENTIFIED, CLOSED_UNFOUNDED, CLOSED_TRANSFERRED),
        SUSPECT_IDENTIFIED: (ARREST_MADE, CLOSED_UNFOUNDED, CLOSED_TRANSFERRED),
        ARREST_MADE: (CHARGED, CLOSED_TRANSFERRED),
        CHARGED: (IN_COURT, CLOSED_TRANSFERRED),
        IN_COURT: (CLOSED_CONVICTED, CLOSED_ACQUITTED, CLOSED_TRANSFERRED),
        REOPENED: (UNDER_INVESTIGATION, CLOSED_TRANSFERRED),
        CLOSED_CONVICTED: (REOPENED,),
        CLOSED_ACQUITTED: (REOPENED,),
        CLOSED_UNFOUNDED: (REOPENED,),
        CLOSED_TRANSFERRED: (REOPENED,),
    }
)

# Discretionary decisions: a reason code alone is not enough for the record.
REASON_TEXT_REQUIRED: frozenset[str] = frozenset({CLOSED_UNFOUNDED, CLOSED_TRANSFERRED, REOPENED})

_ARREST_OR_LATER = frozenset({SUSPECT_IDENTIFIED, ARREST_MADE, CHARGED, IN_COURT})
RECORDABLE_IN: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "suspect": OPEN_STATUSES,
        "arrest": _ARREST_OR_LATER,
        "charge": frozenset({ARREST_MADE, CHARGED, IN_COURT}),
        "court_outcome": frozenset({IN_COURT}),
        "assignment": OPEN_STATUSES,
        "victim_service": frozenset(STATUSES),
        "first_contact": frozenset(STATUSES),
        "referral_link": frozenset(STATUSES),
    }
)


class IllegalTransition(CaseworkError):
    """The requested status cannot follow the current one (HTTP 409 with ``allowed``)."""

    rule = "illegal_transition"

    def __init__(self, current: str, requested: str, allowed: list[str]) -> None:
        self.current = current
        self.requested = requested
        self.allowed = list(allowed)
        super().__init__(
            f"a case cannot go from {current} to {requested}; "
            f"allowed: {', '.join(self.allowed) or 'none'}"
        )


class TransitionRequirementNotMet(CaseworkError):
    """The transition is legal, but a fact it needs is not on the case yet."""

    rule = "transition_requirement_not_met"

    def __init__(self, requested: str, requirement: str, description: str) -> None:
        self.requested = requested
        self.requirement = requirement
        self.description = description
        super().__init__(f"{requested} requires {requirement}: {description}")


@dataclass(frozen=True)
class CaseFacts:
    """What the lifecycle needs to know of a case, counted for the current cycle."""

    has_assignment: bool = False
    suspects: int = 0
    arrests: int = 0
    charges: int = 0
    convictions: int = 0
    acquittals: int = 0
    charged_suspects_without_outcome: int = 0


@dataclass(frozen=True)
class Requirement:
    name: str
    description: str
    met: Callable[[CaseFacts], bool]


_ASSIGNED = Requirement(
    "case_assigned", "assign the case to a team first", lambda f: f.has_assignment
)
_EVERY_OUTCOME = Requirement(
    "outcome_for_every_charged_suspect",
    "record a court outcome for every suspect charged",
    lambda f: f.charged_suspects_without_outcome == 0,
)

REQUIREMENTS: Mapping[str, tuple[Requirement, ...]] = MappingProxyType(
    {
        UNDER_INVESTIGATION: (_ASSIGNED,),
        SUSPECT_IDENTIFIED: (
            Requirement("suspect_recorded", "record a suspect first", lambda f: f.suspects > 0),
        ),
        ARREST_MADE: (
            Requirement("arrest_recorded", "record an arrest first", lambda f: f.arrests > 0),
        ),
        CHARGED: (
            Requirement("charge_recorded", "record a charge first", lambda f: f.charges > 0),
        ),
        CLOSED_CONVICTED: (
            Requirement(
                "conviction_recorded",
                "record a conviction first",
                lambda f: f.convictions > 0,
            ),
            _EVERY_OUTCOME,
        ),
        CLOSED_ACQUITTED: (
            Requirement(
                "acquittal_only",
                "record the court outcomes first; a case with a conviction closes as convicted",
                lambda f: f.acquittals > 0 and f.convictions == 0,
            ),
            _EVERY_OUTCOME,
        ),
    }
)


def is_closed(status: str) -> bool:
    return status in CLOSED_STATUSES


def allowed_transitions(status: str) -> list[str]:
    """The statuses a case may move to from ``status``, in the order officers see them."""
    return list(TRANSITIONS.get(status, ()))


def legal_transitions() -> list[tuple[str, str]]:
    """Every legal (from, to) pair of the table."""
    return [(src, dst) for src, targets in TRANSITIONS.items() for dst in targets]


def check_transition(
    current: str, requested: str, facts: CaseFacts, *, reason_text: str | None = None
) -> None:
    """Raise unless ``current`` -> ``requested`` is legal and its requirements are met."""
    if requested not in STATUSES:
        raise InvalidValue("to_status", f"unknown status {requested!r}")
    allowed = allowed_transitions(current)
    if requested not in allowed:
        raise IllegalTransition(current, requested, allowed)
    if requested in REASON_TEXT_REQUIRED and not reason_text:
        raise ReasonRequired("reason_text", f"a written reason is required for {requested}")
    for requirement in REQUIREMENTS.get(requested, ()):
        if not requirement.met(facts):
            raise TransitionRequirementNotMet(requested, requirement.name, requirement.description)


def check_recordable(action: str, status: str) -> None:
    """Raise :class:`NotAllowedInStatus` unless ``action`` may be recorded in ``status``."""
    allowed = RECORDABLE_IN[action]
    if status not in allowed:
        raise NotAllowedInStatus(action, status, allowed)
