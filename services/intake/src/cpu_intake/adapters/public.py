"""What the API answers (``XPublic`` in the full-stack-fastapi-template's naming).

``ReferralPublic`` holds decrypted personal fields and is built only for a caller who may read
the referral, in a transaction that audits the read. Lists and matches carry ids, references,
codes, dates and scores only.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cpu_intake.adapters.repository import ReferralDetails, codes, utc
from cpu_intake.adapters.tables import Referral
from cpu_intake.domain.messages import custom_error

# As the referral.withdrawn contract allows.
REASON_CODE = re.compile(r"^[a-z_]{1,50}$")


class ReporterPublic(BaseModel):
    anonymous: bool
    name: str | None = None
    phone: str | None = None
    relationship: str | None = None


class ChildPublic(BaseModel):
    id: uuid.UUID
    given_name: str | None
    family_name: str | None
    name_km: str | None
    sex: str
    date_of_birth: date | None
    age_estimate: int | None
    age_years: int | None = Field(description="Age in completed years on the day received.")
    province_code: str
    district: str | None
    commune: str | None
    village: str | None


class PerpetratorPublic(BaseModel):
    name: str | None = None
    relationship: str | None = None
    age_estimate: int | None = None
    has_access_to_child: bool | None = None


class MatchDecisionPublic(BaseModel):
    referral_id: uuid.UUID = Field(description="The candidate: the earlier referral.")
    decision: str
    score: float | None
    reasons: list[str]
    decided_by: str
    decided_at: datetime


class ReferralSummaryPublic(BaseModel):
    """A line of a list: codes, dates and the priority, nothing personal."""

    id: uuid.UUID
    reference: str
    status: str
    priority: str
    teams: list[str]
    concerns: list[str]
    source: str
    province_code: str
    children_count: int
    immediate_danger: bool
    injuries: bool
    received_at: datetime
    submitted_at: datetime
    match_decision_pending: bool

    @classmethod
    def of(cls, row: Referral) -> ReferralSummaryPublic:
        return cls(
            id=row.id,
            reference=row.reference,
            status=row.status,
            priority=row.priority,
            teams=codes(row.teams),
            concerns=codes(row.concerns),
            source=row.source,
            province_code=row.province_code,
            children_count=row.children_count,
            immediate_danger=row.immediate_danger,
            injuries=row.injuries,
            received_at=utc(row.received_at),
            submitted_at=utc(row.submitted_at),
            match_decision_pending=row.match_decision_pending,
        )


class ReferralPublic(ReferralSummaryPublic):
    """One referral in full, decrypted."""

    rule_ids: list[str]
    triage_rules_version: int
    submitted_by: str
    reporter: ReporterPublic
    children: list[ChildPublic]
    alleged_perpetrators: list[PerpetratorPublic]
    narrative: str
    same_child_as_referral_id: uuid.UUID | None
    match_decisions: list[MatchDecisionPublic]
    withdrawal_reason: str | None

    @classmethod
    def of_details(cls, details: ReferralDetails) -> ReferralPublic:
        row = details.row
        summary = ReferralSummaryPublic.of(row).model_dump()
        return cls(
            **summary,
            rule_ids=codes(row.rule_ids),
            triage_rules_version=row.rules_version,
            submitted_by=row.submitted_by,
            reporter=ReporterPublic(anonymous=row.reporter_anonymous, **details.reporter),
            children=[
                ChildPublic(
                    id=c.id,
                    given_name=c.given_name,
                    family_name=c.family_name,
                    name_km=c.name_km,
                    sex=c.sex,
                    date_of_birth=c.date_of_birth,
                    age_estimate=c.age_estimate,
                    age_years=c.age_years,
                    province_code=c.province_code,
                    district=c.district,
                    commune=c.commune,
                    village=c.village,
                )
                for c in details.children
            ],
            alleged_perpetrators=[PerpetratorPublic(**p) for p in details.perpetrators],
            narrative=details.narrative,
            same_child_as_referral_id=row.same_child_as_id,
            match_decisions=[
                MatchDecisionPublic(
                    referral_id=d.candidate_referral_id,
                    decision=d.decision,
                    score=d.score,
                    reasons=codes(d.reasons),
                    decided_by=d.decided_by,
                    decided_at=utc(d.decided_at),
                )
                for d in details.decisions
            ],
            withdrawal_reason=row.withdrawal_reason,
        )


class ReferralsPublic(BaseModel):
    items: list[ReferralSummaryPublic]
    total: int
    limit: int
    offset: int


class ReferralCreatedPublic(BaseModel):
    """The answer to a submission: what the officer tells the caller, and what comes next."""

    id: uuid.UUID
    reference: str
    priority: str
    status: str
    teams: list[str]
    rule_ids: list[str]
    possible_matches: int = Field(description="Earlier referrals that may be the same child.")
    match_decision_pending: bool = Field(
        description="True when casework hears of the referral only after the officer decides "
        "on its possible matches (see GET /referrals/{id}/matches)."
    )


class MatchPublic(BaseModel):
    referral_id: uuid.UUID
    reference: str
    score: float = Field(ge=0, le=1)
    reasons: list[str]


class MatchesPublic(BaseModel):
    matches: list[MatchPublic]


class MatchDecisionResultPublic(BaseModel):
    referral_id: uuid.UUID
    candidate_referral_id: uuid.UUID
    decision: str
    status: str
    match_decision_pending: bool
    same_child_as_referral_id: uuid.UUID | None


class WithdrawalCreate(BaseModel):
    """``POST /referrals/{id}/withdrawal``: why (a code such as ``duplicate_call``)."""

    model_config = ConfigDict(extra="forbid")

    reason_code: str

    @field_validator("reason_code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not REASON_CODE.match(value):
            raise custom_error("invalid_reason_code")
        return value


class WithdrawalResultPublic(BaseModel):
    id: uuid.UUID
    status: str
    withdrawal_reason: str
