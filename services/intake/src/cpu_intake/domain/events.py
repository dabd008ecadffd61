"""Domain events of a referral: what happened, in the past tense, recorded by the aggregate.

These carry internal ids. The service layer turns them into the published contracts of
``cpu_shared.contracts.intake`` (pseudonymous ids, no personal data) in the same transaction
that stores the referral, through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ReferralSubmitted:
    referral_id: UUID
    reference: str
    submitted_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReferralTriaged:
    referral_id: UUID
    priority: str
    teams: tuple[str, ...]
    rule_ids: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class MatchDecided:
    referral_id: UUID
    candidate_referral_id: UUID
    decision: str
    decided_by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReferralLinked:
    """The officer confirmed that the child is the one of an earlier referral."""

    referral_id: UUID
    same_child_as_referral_id: UUID
    at: datetime


@dataclass(frozen=True, slots=True)
class ReferralCaseOpened:
    referral_id: UUID
    case_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ReferralWithdrawn:
    referral_id: UUID
    reason_code: str
    withdrawn_by: str
    at: datetime


DomainEvent = (
    ReferralSubmitted
    | ReferralTriaged
    | MatchDecided
    | ReferralLinked
    | ReferralCaseOpened
    | ReferralWithdrawn
)
