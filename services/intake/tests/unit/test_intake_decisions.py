"""The officer's match decision: same child or new child, and its rules."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from cpu_intake.domain.decisions import (
    MatchDecision,
    MatchDecisionCreate,
    MatchDecisionKind,
    decide_match,
)
from cpu_intake.domain.messages import OfficerFacingError
from cpu_intake.domain.referral import Referral, ReferralCreate, ReferralStatus, format_reference
from cpu_intake.domain.triage import triage

NOW = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def triaged() -> Referral:
    details = ReferralCreate.model_validate(
        {
            "source": "police",
            "received_at": "2026-03-01T09:00:00+07:00",
            "reporter": {"name": "Officer Vuthy"},
            "children": [{"given_name": "Sokha", "age_estimate": 9, "province_code": "12"}],
            "concerns": ["neglect"],
        },
        context={"now": NOW},
    )
    referral = Referral.submit(
        details,
        referral_id=uuid4(),
        reference=format_reference(2026, 7),
        submitted_by="officer.dara",
        at=NOW,
    )
    referral.apply_triage(triage(details), at=NOW)
    referral.events.clear()
    return referral


def request(decision: str, candidate: UUID) -> MatchDecisionCreate:
    return MatchDecisionCreate.model_validate({"decision": decision, "referral_id": str(candidate)})


def test_same_child_links_the_referral_and_records_who_and_when() -> None:
    referral, candidate = triaged(), uuid4()
    decision = referral.decide_match(
        request("same_child", candidate), decided_by="officer.sophea", at=NOW
    )
    assert decision == MatchDecision(
        referral.id, candidate, MatchDecisionKind.SAME_CHILD, "officer.sophea", NOW
    )
    assert referral.status is ReferralStatus.LINKED
    assert referral.same_child_as == candidate
    assert [type(e).__name__ for e in referral.events] == ["MatchDecided", "ReferralLinked"]
    assert referral.history[-1].by == "officer.sophea"


def test_new_child_keeps_the_referral_open_for_other_candidates() -> None:
    referral, first, second = triaged(), uuid4(), uuid4()
    version = referral.version
    referral.decide_match(request("new_child", first), decided_by="officer.sophea", at=NOW)
    assert referral.status is ReferralStatus.TRIAGED
    assert referral.version == version + 1
    referral.decide_match(request("same_child", second), decided_by="officer.sophea", at=NOW)
    assert referral.status is ReferralStatus.LINKED
    assert [d.decision for d in referral.match_decisions] == ["new_child", "same_child"]


def test_cannot_link_to_itself() -> None:
    referral = triaged()
    with pytest.raises(OfficerFacingError) as caught:
        referral.decide_match(request("same_child", referral.id), decided_by="o", at=NOW)
    assert caught.value.code == "match_self"
    assert str(caught.value) == "A referral cannot be matched with itself."
    assert referral.status is ReferralStatus.TRIAGED and not referral.match_decisions


def test_cannot_decide_the_same_candidate_twice() -> None:
    referral, candidate = triaged(), uuid4()
    referral.decide_match(request("new_child", candidate), decided_by="o", at=NOW)
    with pytest.raises(OfficerFacingError) as caught:
        referral.decide_match(request("same_child", candidate), decided_by="o", at=NOW)
    assert caught.value.code == "match_already_decided"
    assert len(referral.match_decisions) == 1


def test_no_decisions_after_the_referral_is_linked() -> None:
    referral = triaged()
    referral.decide_match(request("same_child", uuid4()), decided_by="o", at=NOW)
    with pytest.raises(OfficerFacingError) as caught:
        referral.decide_match(request("new_child", uuid4()), decided_by="o", at=NOW)
    assert caught.value.code == "match_decision_not_open"
    assert "linked" in str(caught.value)


def test_no_decisions_before_triage() -> None:
    referral = triaged()
    referral.status = ReferralStatus.SUBMITTED
    with pytest.raises(OfficerFacingError) as caught:
        referral.decide_match(request("same_child", uuid4()), decided_by="o", at=NOW)
    assert caught.value.code == "match_decision_not_open"


def test_the_candidate_must_be_one_of_the_matches_when_they_are_given() -> None:
    referral, listed = triaged(), uuid4()
    with pytest.raises(OfficerFacingError) as caught:
        referral.decide_match(
            request("same_child", uuid4()), decided_by="o", at=NOW, candidate_ids={listed}
        )
    assert caught.value.code == "match_not_a_candidate"
    referral.decide_match(
        request("same_child", listed), decided_by="o", at=NOW, candidate_ids={listed}
    )


def test_decide_match_needs_an_officer_and_an_aware_time() -> None:
    kwargs: dict[str, Any] = {
        "referral_id": uuid4(),
        "request": request("new_child", uuid4()),
        "earlier_decisions": [],
    }
    with pytest.raises(ValueError, match="decided_by"):
        decide_match(**kwargs, decided_by="", decided_at=NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        decide_match(**kwargs, decided_by="o", decided_at=datetime(2026, 3, 1))


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe", "referral_id": str(uuid4())},
        {"decision": "same_child"},
        {"decision": "same_child", "referral_id": "not-a-uuid"},
        {"decision": "same_child", "referral_id": str(uuid4()), "extra": 1},
    ],
)
def test_the_request_body_is_validated(body: dict) -> None:
    with pytest.raises(ValidationError):
        MatchDecisionCreate.model_validate(body)
