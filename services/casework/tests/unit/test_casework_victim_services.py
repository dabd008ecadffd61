"""Victim services to the children of a case."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cpu_casework.domain import events as ev
from cpu_casework.domain.case import Case, Child
from cpu_casework.domain.errors import DateInFuture, InvalidValue, UnknownChild
from cpu_casework.domain.victim_services import SERVICES

OPENED = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 20, 2, 0, tzinfo=UTC)
TODAY = date(2025, 3, 20)
CHILD = "child-00001"


def open_case() -> Case:
    case = Case.open(
        case_id="case-00000001",
        origin="referral",
        origin_id="referral-0001",
        opened_at=OPENED,
        priority="P1",
        province_code="12",
        concerns=["sexual_abuse"],
        teams=["OVCS"],
        children=[Child(CHILD, 12, "female")],
        referral_received_at=OPENED,
    )
    case.pull_events()
    return case


@pytest.mark.parametrize(
    ("service", "provider"),
    [
        ("medical_care", "hosp-calmette"),
        ("psychological_counselling", "ngo:tpo"),
        ("legal_representation", "ngo:lac"),
        ("shelter", "ngo:hagar"),
        ("family_support", "dosvy:12"),
        ("partner_referral", "mosvy"),
        ("partner_referral", "dosvy:17"),
        ("partner_referral", "ngo:aple"),
    ],
)
def test_each_service_is_recorded_with_date_and_provider(service: str, provider: str) -> None:
    case = open_case()
    record = case.record_victim_service(
        CHILD,
        service=service,
        provider_code=provider,
        provided_on=date(2025, 3, 15),
        by="ovcs-1",
        now=NOW,
    )
    assert record is not None
    assert case.victim_services == [record]
    assert case.pull_events() == [
        ev.CaseVictimServiceProvided(
            case_id=case.case_id,
            child_id=CHILD,
            service=service,
            provider_code=provider,
            provided_on=date(2025, 3, 15),
        )
    ]


def test_the_six_services() -> None:
    assert set(SERVICES) == {
        "medical_care",
        "psychological_counselling",
        "legal_representation",
        "shelter",
        "family_support",
        "partner_referral",
    }


def test_a_service_is_not_in_the_future_but_may_precede_the_case() -> None:
    case = open_case()
    with pytest.raises(DateInFuture):
        case.record_victim_service(
            CHILD,
            service="shelter",
            provider_code="ngo:hagar",
            provided_on=TODAY + timedelta(days=1),
            by="ovcs-1",
            now=NOW,
        )
    # The hospital treated the child before the referral reached the unit.
    assert case.record_victim_service(
        CHILD,
        service="medical_care",
        provider_code="hosp-kc",
        provided_on=date(2025, 3, 1),
        by="ovcs-1",
        now=NOW,
    )


@pytest.mark.parametrize(
    ("service", "provider"),
    [
        ("massage", "ngo:x"),
        ("shelter", ""),
        ("shelter", "Mr Sokha's house"),
        ("shelter", "x"),
        ("partner_referral", "hosp-calmette"),
        ("partner_referral", "dosvy:26"),
        ("partner_referral", "ngo:"),
    ],
)
def test_bad_service_or_provider_is_refused(service: str, provider: str) -> None:
    case = open_case()
    with pytest.raises(InvalidValue):
        case.record_victim_service(
            CHILD, service=service, provider_code=provider, provided_on=TODAY, by="ovcs-1", now=NOW
        )


def test_a_service_goes_to_a_child_on_the_case() -> None:
    case = open_case()
    with pytest.raises(UnknownChild):
        case.record_victim_service(
            "child-99999",
            service="shelter",
            provider_code="ngo:hagar",
            provided_on=TODAY,
            by="ovcs-1",
            now=NOW,
        )


def test_the_same_service_twice_is_a_retry() -> None:
    case = open_case()
    kwargs = {
        "service": "legal_representation",
        "provider_code": "ngo:lac",
        "provided_on": TODAY,
        "by": "ovcs-1",
        "now": NOW,
    }
    assert case.record_victim_service(CHILD, **kwargs) is not None  # type: ignore[arg-type]
    assert case.record_victim_service(CHILD, **kwargs) is None  # type: ignore[arg-type]
    assert len(case.victim_services) == 1
