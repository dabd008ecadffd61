"""Events on ``intake.referral.events``."""

from datetime import datetime

from pydantic import BaseModel, Field

from cpu_shared.contracts.base import EventData
from cpu_shared.contracts.codes import (
    Concern,
    Priority,
    ProvinceCode,
    Pseudonym,
    ReferralSource,
    Sex,
    Team,
)
from cpu_shared.messaging.topics import REFERRAL_EVENTS


class ChildProfile(BaseModel):
    """What reporting may know of a child: a pseudonym, an age in years, sex, province."""

    child_id: Pseudonym
    age_years: int | None = Field(default=None, ge=0, le=17)
    sex: Sex = "unknown"
    province_code: ProvinceCode


class ReferralSubmitted(EventData):
    event_type = "referral.submitted"
    topic = REFERRAL_EVENTS

    referral_id: Pseudonym
    source: ReferralSource
    received_at: datetime
    concerns: list[Concern] = Field(min_length=1)
    children: list[ChildProfile] = Field(min_length=1)


class ReferralTriaged(EventData):
    event_type = "referral.triaged"
    topic = REFERRAL_EVENTS

    referral_id: Pseudonym
    received_at: datetime
    priority: Priority
    teams: list[Team] = Field(min_length=1)
    rule_ids: list[str] = Field(default_factory=list)
    province_code: ProvinceCode
    concerns: list[Concern] = Field(min_length=1)
    children: list[ChildProfile] = Field(min_length=1)
    # Set when the officer confirmed that a child is one already known: link, do not open.
    same_child_as_referral_id: Pseudonym | None = None


class ReferralWithdrawn(EventData):
    event_type = "referral.withdrawn"
    topic = REFERRAL_EVENTS

    referral_id: Pseudonym
    reason_code: str = Field(max_length=50, pattern=r"^[a-z_]+$")
    withdrawn_at: datetime
