"""Issue 3: every event of CONTRACT.md section 4 has a versioned model; none read by reporting
carries a personal field."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from cpu_shared.contracts import (
    EVENT_CATALOGUE,
    EventData,
    new_envelope,
    parse_event,
    personal_fields_in,
)
from cpu_shared.contracts.casework import CaseCharged
from cpu_shared.contracts.intake import ReferralTriaged
from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.topics import TOPICS

CONTRACT_EVENTS = {
    "intake.referral.events": {"referral.submitted", "referral.triaged", "referral.withdrawn"},
    "casework.case.events": {
        "case.opened",
        "case.assigned",
        "case.status_changed",
        "case.suspect_arrested",
        "case.charged",
        "case.court_outcome_recorded",
        "case.victim_service_provided",
        "case.closed",
    },
    "forensics.evidence.events": {
        "evidence.registered",
        "evidence.custody_transferred",
        "evidence.analysis_requested",
        "evidence.analysis_completed",
        "evidence.disposed",
    },
    "icac.tip.events": {"tip.received", "tip.triaged", "tip.escalated", "tip.closed"},
}


def test_every_contract_event_has_a_model_on_its_topic() -> None:
    declared: dict[str, set[str]] = {}
    for (event_type, _version), model in EVENT_CATALOGUE.items():
        declared.setdefault(model.topic.name, set()).add(event_type)
    for topic, events in CONTRACT_EVENTS.items():
        assert events <= declared.get(topic, set()), f"{topic} lacks {events - declared[topic]}"
    assert {t.name for t in TOPICS} >= set(CONTRACT_EVENTS) | {"icac.tips.inbound"}


@pytest.mark.parametrize(
    "model",
    sorted(EVENT_CATALOGUE.values(), key=lambda m: m.event_type),
    ids=lambda m: f"{m.event_type}.v{m.event_version}",
)
def test_events_read_by_reporting_carry_no_personal_field(model: type[EventData]) -> None:
    assert model.read_by_reporting
    assert list(personal_fields_in(model)) == []


def test_the_denylist_check_finds_personal_fields_even_when_nested() -> None:
    class Person(BaseModel):
        family_name: str
        phone_number: str

    class Leaky(BaseModel):
        case_id: str
        child: Person | None = None
        narrative: str = ""
        date_of_birth: str = ""

    assert sorted(personal_fields_in(Leaky)) == [
        "child.family_name",
        "child.phone_number",
        "date_of_birth",
        "narrative",
    ]


def test_events_refuse_unknown_fields_so_personal_data_cannot_ride_along() -> None:
    with pytest.raises(ValidationError):
        CaseCharged.model_validate(
            {
                "case_id": "ps_abcdefgh",
                "suspect_id": "ps_ijklmnop",
                "offence_codes": ["CC-1"],
                "charged_on": "2026-01-02",
                "suspect_name": "someone",
            }
        )


def triaged() -> ReferralTriaged:
    return ReferralTriaged(
        referral_id="ps_referral1",
        received_at=datetime(2026, 3, 1, 8, tzinfo=UTC),
        priority="P1",
        teams=["OVCS", "HIT"],
        province_code="12",
        concerns=["homicide"],
        children=[
            {"child_id": "ps_child0001", "age_years": 9, "sex": "female", "province_code": "12"}
        ],
    )


def test_envelope_round_trip_and_rfc3339_utc() -> None:
    envelope = new_envelope(
        triaged(),
        source="intake",
        aggregate_id="ps_referral1",
        aggregate_version=2,
        correlation_id="c-1",
    )
    raw = envelope.to_bytes()
    assert b'"occurred_at":"' in raw and envelope.model_dump(mode="json")["occurred_at"][-1] == "Z"
    back = EventEnvelope.from_bytes(raw)
    assert back == envelope
    assert parse_event(back) == triaged()
    assert isinstance(back.event_id, uuid.UUID)


def test_parse_event_skips_unknown_types_and_refuses_unknown_versions() -> None:
    base = dict(source="x", aggregate_id="a", aggregate_version=1, correlation_id="c")
    unknown = EventEnvelope(event_type="something.else", event_version=1, data={}, **base)
    assert parse_event(unknown) is None
    future = EventEnvelope(event_type="referral.triaged", event_version=99, data={}, **base)
    with pytest.raises(InvalidEvent, match="no version 99"):
        parse_event(future)
    broken = EventEnvelope(
        event_type="referral.triaged", event_version=1, data={"priority": "P9"}, **base
    )
    with pytest.raises(ValidationError):
        parse_event(broken)


def test_envelope_requires_an_aware_timestamp() -> None:
    with pytest.raises(ValidationError):
        EventEnvelope(
            event_type="t",
            event_version=1,
            source="s",
            aggregate_id="a",
            aggregate_version=0,
            correlation_id="c",
            data={},
            occurred_at=datetime(2026, 1, 1),
        )  # naive
