"""Domain events: what happened to a case, in the past tense, recorded by the aggregate.

The service layer turns them into the contract events of ``casework.case.events``
(``cpu_shared.contracts.casework``): the classes that have a contract twin carry its name and
its field names, so the mapping is "pseudonymise the ids, drop the fields the contract does not
have". Ids here are internal (user names, case and suspect ids); no event holds free text or a
suspect's details, so a reason text or a sealed details blob can never leak through one.
Events without a contract twin (``ReferralLinked``, ``SuspectIdentified``...) are for the
service layer's own use (timeline, metrics, alerts); publishing them is its choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class Event:
    case_id: str


@dataclass(frozen=True)
class CaseOpened(Event):
    origin: str
    origin_id: str
    opened_at: datetime
    referral_received_at: datetime | None
    priority: str
    province_code: str | None
    concerns: tuple[str, ...]
    teams: tuple[str, ...]
    child_ids: tuple[str, ...]
    children_under_15: int
    child_homicide: bool


@dataclass(frozen=True)
class ReferralLinked(Event):
    referral_id: str
    linked_at: datetime
    new_child_ids: tuple[str, ...]
    new_concerns: tuple[str, ...]
    priority: str
    priority_raised: bool


@dataclass(frozen=True)
class ChildAdded(Event):
    child_id: str
    added_at: datetime


@dataclass(frozen=True)
class ChildHomicideFlagged(Event):
    flagged_at: datetime
    assigned_to_hit: bool


@dataclass(frozen=True)
class CaseAssigned(Event):
    team: str
    investigator_id: str | None
    province_code: str | None
    reassignment: bool
    reason_code: str | None
    assigned_at: datetime
    assigned_by: str


@dataclass(frozen=True)
class CaseStatusChanged(Event):
    from_status: str
    to_status: str
    reason_code: str
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True)
class CaseClosed(Event):
    status: str
    closed_at: datetime
    child_homicide: bool


@dataclass(frozen=True)
class SuspectIdentified(Event):
    suspect_id: str
    identified_at: datetime


@dataclass(frozen=True)
class CaseSuspectArrested(Event):
    suspect_id: str
    arrested_on: date
    province_code: str | None


@dataclass(frozen=True)
class CaseCharged(Event):
    suspect_id: str
    offence_codes: tuple[str, ...]
    charged_on: date


@dataclass(frozen=True)
class CaseCourtOutcomeRecorded(Event):
    suspect_id: str
    outcome: str
    offence_codes: tuple[str, ...]
    sentence_months: int
    decided_on: date


@dataclass(frozen=True)
class CaseVictimServiceProvided(Event):
    child_id: str
    service: str
    provider_code: str
    provided_on: date


@dataclass(frozen=True)
class FirstContactRecorded(Event):
    child_id: str
    contacted_at: datetime
