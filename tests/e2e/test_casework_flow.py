"""Issue 6 end to end, on the real broker with every service a process: a referral submitted at
intake becomes a case opened and assigned in casework; an arrest and a conviction are recorded
through the API; the events appear on ``casework.case.events`` and carry no personal data."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cpu_platform.testing.kafka_tools import bearer, read_all
from cpu_platform.testing.stack import PlatformStack
from cpu_shared.contracts import PERSONAL_FIELD_DENYLIST
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.topics import CASE_EVENTS
from cpu_shared.security.crypto import Keyring

pytestmark = pytest.mark.e2e

TIMEOUT = 240.0  # generous: CI machines run this beside four other service processes


def run(coro: Any) -> Any:
    """Run a coroutine to completion from this synchronous test, on a thread of its own: a
    browser test earlier in the session leaves Playwright's event loop on the main thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def personal_values() -> dict[str, str]:
    tag = secrets.token_hex(3)
    return {
        "given_name": f"Chenda{tag}",
        "family_name": f"Vornak{tag}",
        "name_km": "ចន្ទា",
        "phone": f"+85516{secrets.randbelow(900_000) + 100_000}",
        "narrative": f"Casework e2e narrative {tag}: bruises seen at school.",
        "village": f"Phum Roluos{tag}",
        "reporter": f"Reporter{tag}",
        "perpetrator": f"Kosal{tag}",
        "suspect_given": f"Rithy{tag}",
        "suspect_family": f"Mengly{tag}",
        "suspect_phone": f"+85517{secrets.randbelow(900_000) + 100_000}",
        "suspect_address": f"Street {tag} Battambang",
    }


def referral_body(values: dict[str, str]) -> dict[str, Any]:
    """A referral as CONTRACT.md section 6 describes it."""
    return {
        "source": "helpline_1288",
        "received_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat(),
        "reporter": {
            "anonymous": False,
            "name": values["reporter"],
            "phone": values["phone"],
            "relationship": "teacher",
        },
        "children": [
            {
                "given_name": values["given_name"],
                "family_name": values["family_name"],
                "name_km": values["name_km"],
                "sex": "female",
                "age_estimate": 9,
                "province_code": "02",
                "district": "Battambang",
                "commune": "Svay Por",
                "village": values["village"],
            }
        ],
        "concerns": ["physical_abuse"],
        "alleged_perpetrators": [
            {
                "name": values["perpetrator"],
                "relationship": "stepfather",
                "age_estimate": 40,
                "has_access_to_child": True,
            }
        ],
        "narrative": values["narrative"],
        "immediate_danger": True,
        "injuries": True,
    }


def wait_for(check: Any, what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


def case_events(stack: PlatformStack, case_pseudonym: str) -> list[Any]:
    records = run(read_all(stack.bootstrap_servers, CASE_EVENTS.name))
    return [r for r in records if r.key == case_pseudonym.encode()]


def denied_words(field: str) -> set[str]:
    words = set(re.findall(r"[a-z0-9]+", field.lower()))
    return (words | {field.lower()}) & PERSONAL_FIELD_DENYLIST


def assert_no_personal_data(records: list[Any], values: list[str]) -> None:
    assert records
    for record in records:
        envelope = json.loads(record.value)
        for key in envelope["data"]:
            assert not denied_words(key), (envelope["event_type"], key)
        raw = record.value.decode("utf-8")
        for value in values:
            assert value not in raw, (envelope["event_type"], "carries a submitted value")


def test_a_referral_becomes_a_case_with_an_arrest_and_a_conviction(
    platform_stack: PlatformStack,
) -> None:
    values = personal_values()
    intake = platform_stack.url("intake")
    casework = platform_stack.url("casework")
    submitted = httpx.post(
        f"{intake}/api/v1/referrals",
        json=referral_body(values),
        headers=bearer("intake_officer", user="intake-e2e"),
        timeout=30,
    )
    assert submitted.status_code == 201, (
        f"intake's POST /api/v1/referrals answered {submitted.status_code}: {submitted.text}"
    )
    referral_id = submitted.json()["id"]

    supervisor = bearer("supervisor", user="sup-e2e")

    def opened() -> dict[str, Any] | None:
        found = httpx.get(
            f"{casework}/api/v1/cases",
            params={"referral_id": referral_id},
            headers=supervisor,
            timeout=30,
        ).json()
        return found["items"][0] if found.get("items") else None

    summary = wait_for(opened, "the case of the referral in casework")
    case_id = summary["id"]
    assert summary["lead_team"] == "OVCS"
    assert summary["priority"] == "P1" and summary["province_code"] == "02"

    investigator = bearer("investigator", user="inv-e2e", teams=["OVCS"], provinces=["02"])
    # Another province's investigator of the same team cannot see it.
    elsewhere = bearer("investigator", user="inv-e2e-12", teams=["OVCS"], provinces=["12"])
    assert (
        httpx.get(f"{casework}/api/v1/cases/{case_id}", headers=elsewhere, timeout=30).status_code
        == 404
    )
    today_kh = (datetime.now(UTC) + timedelta(hours=7)).date().isoformat()  # Cambodia's date

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{casework}/api/v1/cases/{case_id}/{path}", json=body, headers=investigator, timeout=30
        )
        assert response.status_code == 201, (path, response.status_code, response.text)
        return response.json()

    def move(status: str, code: str) -> None:
        post("transitions", {"to_status": status, "reason_code": code})

    move("under_investigation", "investigation_started")
    suspect = post(
        "suspects",
        {
            "details": {
                "given_name": values["suspect_given"],
                "family_name": values["suspect_family"],
                "phone": values["suspect_phone"],
                "address": values["suspect_address"],
                "relationship_to_child": "stepfather",
            }
        },
    )["suspect_id"]
    move("suspect_identified", "suspect_located")
    post("arrests", {"suspect_id": suspect, "arrested_on": today_kh})
    move("arrest_made", "arrest_executed")
    post(
        "charges",
        {"suspect_id": suspect, "offence_codes": ["CC-2009-art-246"], "charged_on": today_kh},
    )
    move("charged", "charged_by_prosecutor")
    move("in_court", "sent_to_court")
    post(
        "court-outcomes",
        {
            "suspect_id": suspect,
            "outcome": "convicted",
            "decided_on": today_kh,
            "sentence": {"years": 5, "months": 0},
        },
    )
    move("closed_convicted", "court_judgment")

    pseudonym = Keyring.load().pseudonymizer().pseudonym("case", case_id)
    expected = {
        "case.opened",
        "case.assigned",
        "case.status_changed",
        "case.suspect_arrested",
        "case.charged",
        "case.court_outcome_recorded",
        "case.closed",
    }

    def published() -> list[Any] | None:
        records = case_events(platform_stack, pseudonym)
        types = {json.loads(r.value)["event_type"] for r in records}
        return records if expected <= types else None

    records = wait_for(published, "the case's events on casework.case.events")
    envelopes = [EventEnvelope.from_bytes(r.value) for r in records]
    assert [e.aggregate_version for e in sorted(envelopes, key=lambda e: e.aggregate_version)] == (
        list(range(1, len(envelopes) + 1))
    )
    opened_event = next(e for e in envelopes if e.event_type == "case.opened")
    assert opened_event.data["priority"] == "P1" and opened_event.data["teams"] == ["OVCS"]
    outcome = next(e for e in envelopes if e.event_type == "case.court_outcome_recorded")
    assert outcome.data["outcome"] == "convicted" and outcome.data["sentence_months"] == 60

    # Reporting reads every event of the topic: none may carry personal data.
    submitted_values = [*values.values(), case_id, suspect, referral_id, "inv-e2e", "sup-e2e"]
    # Only this case's events: other tests put deliberately bad events on the shared topic.
    assert_no_personal_data(records, submitted_values)

    detail = httpx.get(f"{casework}/api/v1/cases/{case_id}", headers=investigator, timeout=30)
    assert detail.json()["status"] == "closed_convicted"
    # The overdue first-contact gauge is exported per team, with no personal label.
    metrics = httpx.get(f"{casework}/metrics", timeout=30).text
    assert re.search(r'^cpu_casework_overdue_first_contact\{[^}]*team="OVCS"', metrics, re.M)
    for value in submitted_values:
        assert value not in metrics


def test_an_escalated_tip_opens_an_icac_case(platform_stack: PlatformStack) -> None:
    """Through the real ICAC service: a tip comes in, an analyst claims and escalates it,
    and casework opens an ICAC-led case for it."""
    report = {
        "provider": "hsi",
        "report_id": f"HSI-E2E-{uuid.uuid4().hex[:12]}",
        "incident_type": "online_enticement",
        "incident_at": (datetime.now(UTC) - timedelta(hours=3)).isoformat(),
        "provider_priority": "1",
        "reporter": {"name": "Example Messaging App", "type": "esp"},
        "reported_persons": [{"screen_names": [f"e2e_{secrets.token_hex(4)}"]}],
        "victims": [{"age_estimate": 13, "sex": "female"}],
        "files": [],
    }
    analyst = bearer("icac_analyst", user="analyst-e2e")
    icac_url = f"{platform_stack.url('icac')}/api/v1/tips"
    posted = httpx.post(icac_url, json=report, headers=analyst, timeout=60)
    assert posted.status_code in (200, 201), posted.text
    tip_id = posted.json()["tip_id"]
    claimed = httpx.post(f"{icac_url}/{tip_id}/claim", headers=analyst, timeout=60)
    assert claimed.status_code == 200, claimed.text
    escalated = httpx.post(
        f"{icac_url}/{tip_id}/disposition",
        json={"disposition": "escalate"},
        headers=analyst,
        timeout=60,
    )
    assert escalated.status_code == 200, escalated.text
    # Casework knows the tip only by its pseudonym (what tip.escalated carries).
    tip = Keyring.load().pseudonymizer().pseudonym("tip", tip_id)
    icac = bearer("investigator", user="inv-icac", teams=["ICAC"])

    def opened() -> list[Any]:
        cases = httpx.get(
            f"{platform_stack.url('casework')}/api/v1/cases",
            params={"tip_id": tip},
            headers=icac,
            timeout=30,
        ).json()["items"]
        return [c for c in cases if c["origin_id"] == tip]

    [case] = wait_for(opened, "the tip's case")
    assert case["lead_team"] == "ICAC"
    assert case["priority"] == posted.json()["priority"]
