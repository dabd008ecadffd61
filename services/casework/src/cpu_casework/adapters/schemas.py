"""Request and response bodies of the casework API (``XCreate`` in, ``XPublic`` out).

Requests check shape only (types, lengths, code lists); the rules - which transition, which
date, which offence - are the domain's, which answers 409 or 422 with the rule's name. Every
request model forbids unknown fields, so a typo is an error rather than silently dropped data.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from cpu_shared.contracts.codes import CaseStatus, ProvinceCode, Sex, Team, VictimService

_IN = ConfigDict(extra="forbid", str_strip_whitespace=True)

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,49}$")]
UserId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
ExternalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{8,64}$")]
Text = Annotated[str, StringConstraints(max_length=2000)]
ShortText = Annotated[str, StringConstraints(max_length=200)]


# ---------------------------------------------------------------------------------- requests


class AssignmentCreate(BaseModel):
    model_config = _IN

    team: Team
    investigator_id: UserId | None = None
    investigator_province_code: ProvinceCode | None = None
    reason_code: Code | None = None
    reason_text: Text | None = None


class TransitionCreate(BaseModel):
    model_config = _IN

    to_status: CaseStatus
    reason_code: Code
    reason_text: Text | None = None


class SuspectDetails(BaseModel):
    """A suspect's personal details: stored only encrypted, never in an event or a log."""

    model_config = _IN

    given_name: ShortText | None = None
    family_name: ShortText | None = None
    name_km: ShortText | None = None
    aliases: list[ShortText] = Field(default_factory=list, max_length=20)
    sex: Sex = "unknown"
    date_of_birth: date | None = None
    age_estimate: int | None = Field(default=None, ge=0, le=120)
    national_id: ShortText | None = None
    phone: ShortText | None = None
    address: Text | None = None
    relationship_to_child: ShortText | None = None
    notes: Text | None = None

    @model_validator(mode="after")
    def _identifies_someone(self) -> SuspectDetails:
        if not any(
            (self.given_name, self.family_name, self.name_km, self.aliases, self.national_id)
        ):
            raise ValueError(
                "give at least a name, a Khmer name, an alias or an identity document number"
            )
        return self


class SuspectCreate(BaseModel):
    model_config = _IN

    details: SuspectDetails


class ArrestCreate(BaseModel):
    model_config = _IN

    suspect_id: uuid.UUID
    arrested_on: date


class ChargeCreate(BaseModel):
    model_config = _IN

    suspect_id: uuid.UUID
    offence_codes: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        min_length=1, max_length=20
    )
    charged_on: date


class SentenceIn(BaseModel):
    model_config = _IN

    years: int = 0
    months: int = 0


class CourtOutcomeCreate(BaseModel):
    model_config = _IN

    suspect_id: uuid.UUID
    outcome: Literal["convicted", "acquitted"]
    decided_on: date
    offence_codes: list[Annotated[str, StringConstraints(max_length=40)]] | None = Field(
        default=None, max_length=20
    )
    sentence: SentenceIn | None = None


class VictimServiceCreate(BaseModel):
    model_config = _IN

    child_id: ExternalId
    service: VictimService
    provider_code: Annotated[str, StringConstraints(max_length=50)]
    provided_on: date


class FirstContactCreate(BaseModel):
    model_config = _IN

    child_id: ExternalId
    contacted_at: AwareDatetime


# ---------------------------------------------------------------------------------- responses


class FirstContactPublic(BaseModel):
    due_at: datetime
    status: Literal["open", "done", "cancelled"]
    overdue: bool
    met_target: bool | None


class ChildPublic(BaseModel):
    child_id: str
    age_years: int | None
    sex: str
    referred_at: datetime
    referral_id: str | None
    first_contact_at: datetime | None
    first_contact_by: str | None
    first_contact: FirstContactPublic


class AssignmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the domain's records

    team: str
    investigator_id: str | None
    province_code: str | None
    assigned_at: datetime
    assigned_by: str
    reassignment: bool
    reason_code: str | None
    reason_text: str | None


class TransitionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the domain's records

    from_status: str
    to_status: str
    at: datetime
    by: str
    reason_code: str
    reason_text: str | None
    cycle: int


class SuspectPublic(BaseModel):
    suspect_id: str
    identified_at: datetime
    identified_by: str
    # Only for roles allowed suspect.read (each disclosure is audited); None otherwise.
    details: SuspectDetails | None = None


class ArrestPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the domain's records

    suspect_id: str
    arrested_on: date
    recorded_at: datetime
    recorded_by: str
    cycle: int


class OffencePublic(BaseModel):
    code: str
    law: str
    article: int
    title_en: str


class ChargePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the domain's records

    suspect_id: str
    offence_codes: list[str]
    charged_on: date
    recorded_at: datetime
    recorded_by: str
    cycle: int


class SentencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the domain's records

    years: int
    months: int


class CourtOutcomePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the domain's records

    suspect_id: str
    outcome: str
    offence_codes: list[str]
    sentence: SentencePublic | None
    decided_on: date
    recorded_at: datetime
    recorded_by: str
    cycle: int


class VictimServicePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from the domain's records

    child_id: str
    service: str
    provider_code: str
    provided_on: date
    recorded_at: datetime
    recorded_by: str


class EvidencePublic(BaseModel):
    item_id: str
    item_type: str | None
    parent_item_id: str | None
    collected_at: datetime | None
    registered_at: datetime | None
    custody_kind: str | None
    custody_at: datetime | None
    ledger_index: int | None
    disposed: bool


class TimelineEntry(BaseModel):
    """One thing that happened to the case. ``codes`` holds ids and codes; ``text`` an
    officer's written reason (shown only to those who may see the case)."""

    at: datetime
    kind: str
    by: str | None = None
    codes: dict[str, Any] = Field(default_factory=dict)
    text: str | None = None


class CaseSummary(BaseModel):
    id: str
    origin: str
    origin_id: str
    status: str
    priority: str
    province_code: str | None
    lead_team: str | None
    investigator_id: str | None
    teams: list[str]
    concerns: list[str]
    child_homicide: bool
    opened_at: datetime
    referral_ids: list[str]


class CasePage(BaseModel):
    items: list[CaseSummary]
    total: int
    limit: int
    offset: int


class CaseDetail(CaseSummary):
    referral_received_at: datetime | None
    version: int
    cycle: int
    needs_hit_assignment: bool
    allowed_transitions: list[str]
    children: list[ChildPublic]
    assignments: list[AssignmentPublic]
    transitions: list[TransitionPublic]
    suspects: list[SuspectPublic]
    arrests: list[ArrestPublic]
    charges: list[ChargePublic]
    court_outcomes: list[CourtOutcomePublic]
    victim_services: list[VictimServicePublic]
    evidence: list[EvidencePublic]
    timeline: list[TimelineEntry]


class SuspectCreated(BaseModel):
    suspect_id: str
    case: CaseDetail


class OverdueTask(BaseModel):
    case_id: str
    child_id: str
    priority: str
    province_code: str | None
    received_at: datetime
    due_at: datetime
    overdue_hours: float


class OverdueTeam(BaseModel):
    team: str
    tasks: list[OverdueTask]


class OverdueReport(BaseModel):
    as_of: datetime
    teams: list[OverdueTeam]
