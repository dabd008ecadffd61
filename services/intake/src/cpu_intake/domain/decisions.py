"""The officer's decision on a possible duplicate: is the child the one of an earlier referral?

``POST /api/v1/referrals/{id}/match-decision`` carries :class:`MatchDecisionCreate`
(``{"decision": "same_child" | "new_child", "referral_id": <the candidate>}``). The rules:

- a referral cannot be matched with itself (``match_self``);
- each candidate is decided once: a second decision on the same pair is refused
  (``match_already_decided``), so the record of who decided what, and when, is never rewritten;
- when the service passes the current candidates, the decision must name one of them
  (``match_not_a_candidate``);
- decisions are taken on a triaged referral only (checked by :class:`Referral`, which also
  turns a ``same_child`` decision into the ``linked`` status: after it no more decisions).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from cpu_intake.domain.messages import OfficerFacingError


class MatchDecisionKind(StrEnum):
    SAME_CHILD = "same_child"
    NEW_CHILD = "new_child"


class MatchDecisionCreate(BaseModel):
    """The request body: the decision on one candidate referral."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: MatchDecisionKind
    referral_id: UUID  # the candidate, an earlier referral


@dataclass(frozen=True, slots=True)
class MatchDecision:
    """A recorded decision: on which pair, what, by whom, when."""

    referral_id: UUID
    candidate_referral_id: UUID
    decision: MatchDecisionKind
    decided_by: str
    decided_at: datetime


def decide_match(
    *,
    referral_id: UUID,
    request: MatchDecisionCreate,
    earlier_decisions: Iterable[MatchDecision],
    decided_by: str,
    decided_at: datetime,
    candidate_ids: Collection[UUID] | None = None,
) -> MatchDecision:
    """The decision to record, or :class:`OfficerFacingError` naming the broken rule."""
    if not decided_by:
        raise ValueError("decided_by is the officer's user id and cannot be empty")
    if decided_at.tzinfo is None or decided_at.utcoffset() is None:
        raise ValueError("decided_at must be timezone-aware")
    candidate = request.referral_id
    if candidate == referral_id:
        raise OfficerFacingError("match_self")
    if any(d.candidate_referral_id == candidate for d in earlier_decisions):
        raise OfficerFacingError("match_already_decided")
    if candidate_ids is not None and candidate not in candidate_ids:
        raise OfficerFacingError("match_not_a_candidate")
    return MatchDecision(
        referral_id=referral_id,
        candidate_referral_id=candidate,
        decision=request.decision,
        decided_by=decided_by,
        decided_at=decided_at,
    )
