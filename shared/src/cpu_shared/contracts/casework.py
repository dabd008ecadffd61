"""Events on ``casework.case.events``."""

from datetime import date, datetime
from typing import Literal

from pydantic import Field

from cpu_shared.contracts.base import EventData
from cpu_shared.contracts.codes import (
    CaseStatus,
    Concern,
    Priority,
    ProvinceCode,
    Pseudonym,
    Team,
    VictimService,
)
from cpu_shared.messaging.topics import CASE_EVENTS

OffenceCode = str  # e.g. "LSHTSE-2008-art-15", "CC-art-239"; see casework's offence table


class CaseOpened(EventData):
    event_type = "case.opened"
    topic = CASE_EVENTS

    case_id: Pseudonym
    origin: Literal["referral", "tip"]
    origin_id: Pseudonym
    opened_at: datetime
    referral_received_at: datetime | None = None
    priority: Priority
    province_code: ProvinceCode | None
    concerns: list[Concern] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    child_ids: list[Pseudonym] = Field(default_factory=list)
    children_under_15: int = Field(default=0, ge=0)


class CaseAssigned(EventData):
    event_type = "case.assigned"
    topic = CASE_EVENTS

    case_id: Pseudonym
    team: Team
    investigator_id: Pseudonym | None = None
    province_code: ProvinceCode | None
    reassignment: bool = False
    reason_code: str | None = Field(default=None, max_length=50)
    assigned_at: datetime


class CaseStatusChanged(EventData):
    event_type = "case.status_changed"
    topic = CASE_EVENTS

    case_id: Pseudonym
    from_status: CaseStatus
    to_status: CaseStatus
    reason_code: str | None = Field(default=None, max_length=50)
    changed_at: datetime
    changed_by: Pseudonym


class CaseSuspectArrested(EventData):
    event_type = "case.suspect_arrested"
    topic = CASE_EVENTS

    case_id: Pseudonym
    suspect_id: Pseudonym
    arrested_on: date
    province_code: ProvinceCode | None


class CaseCharged(EventData):
    event_type = "case.charged"
    topic = CASE_EVENTS

    case_id: Pseudonym
    suspect_id: Pseudonym
    offence_codes: list[OffenceCode] = Field(min_length=1)
    charged_on: date


class CaseCourtOutcomeRecorded(EventData):
    event_type = "case.court_outcome_recorded"
    topic = CASE_EVENTS

    case_id: Pseudonym
    suspect_id: Pseudonym
    outcome: Literal["convicted", "acquitted"]
    offence_codes: list[OffenceCode] = Field(default_factory=list)
    sentence_months: int = Field(default=0, ge=0)
    decided_on: date


class CaseVictimServiceProvided(EventData):
    event_type = "case.victim_service_provided"
    topic = CASE_EVENTS

    case_id: Pseudonym
    child_id: Pseudonym
    service: VictimService
    provider_code: str = Field(max_length=50)
    provided_on: date


class CaseClosed(EventData):
    event_type = "case.closed"
    topic = CASE_EVENTS

    case_id: Pseudonym
    status: Literal[
        "closed_convicted", "closed_acquitted", "closed_unfounded", "closed_transferred"
    ]
    closed_at: datetime
    child_homicide: bool = False


class CaseFirstContactRecorded(EventData):
    """The first contact of the unit with a child of the case (the P1 deadline's subject)."""

    event_type = "case.first_contact_recorded"
    topic = CASE_EVENTS

    case_id: Pseudonym
    child_id: Pseudonym
    contacted_at: datetime
