"""Issue 6 in headless Chromium: an investigator signs in, finds the case on the caseload,
records a transition from the case page (a plain form, no JavaScript needed) and sees it on the
timeline; the page reads in Khmer too."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cpu_platform.testing.kafka_tools import bearer, produce_envelopes
from cpu_platform.testing.stack import PlatformStack, run
from cpu_shared.contracts import new_envelope
from cpu_shared.contracts.intake import ChildProfile, ReferralTriaged
from cpu_shared.messaging.topics import REFERRAL_EVENTS
from cpu_shared.security.auth import AuthSettings, mint_dev_token
from cpu_shared.security.crypto import Keyring

pytestmark = pytest.mark.e2e

TIMEOUT = 90


def open_case(stack: PlatformStack) -> str:
    """A referral.triaged as intake publishes it, and the id of the case casework opens."""
    keys = Keyring.load().pseudonymizer()
    referral = keys.pseudonym("referral", str(uuid.uuid4()))
    envelope = new_envelope(
        ReferralTriaged(
            referral_id=referral,
            received_at=datetime.now(UTC) - timedelta(minutes=3),
            priority="P2",
            teams=["OVCS"],
            rule_ids=["sexual_abuse", "victim_support"],
            province_code="08",
            concerns=["sexual_abuse"],
            children=[
                ChildProfile(
                    child_id=keys.pseudonym("child", str(uuid.uuid4())),
                    age_years=12,
                    sex="female",
                    province_code="08",
                )
            ],
        ),
        source="intake",
        aggregate_id=referral,
        aggregate_version=2,
        correlation_id=uuid.uuid4().hex,
    )
    # Playwright's sync API keeps an event loop running on this thread: produce from another.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(
            run, produce_envelopes(stack.bootstrap_servers, REFERRAL_EVENTS.name, [envelope])
        ).result()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found: dict[str, Any] = httpx.get(
            f"{stack.url('casework')}/api/v1/cases",
            params={"referral_id": referral},
            headers=bearer("supervisor"),
            timeout=30,
        ).json()
        if found["items"]:
            return str(found["items"][0]["id"])
        time.sleep(0.25)
    raise AssertionError("casework did not open the case")


def test_an_investigator_records_a_transition_on_the_case_page(
    platform_stack: PlatformStack, browser_page: Any
) -> None:
    case_id = open_case(platform_stack)
    base = platform_stack.url("casework")
    token = mint_dev_token(
        AuthSettings(), "inv-browser", ["investigator"], teams=["OVCS"], provinces=["08"]
    )
    page = browser_page
    page.set_default_timeout(30_000)

    page.goto(f"{base}/ui/cases/{case_id}")
    assert "/ui/login" in page.url  # no session yet
    page.fill("#token", token)
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(f"**/ui/cases/{case_id}")
    assert page.get_attribute("#case-status", "data-status") == "open"

    page.goto(f"{base}/ui/cases?province=08")
    assert page.locator(f"a[href='/ui/cases/{case_id}']").count() == 1
    page.click(f"a[href='/ui/cases/{case_id}']")
    page.wait_for_url(f"**/ui/cases/{case_id}")

    form = page.locator("#transition-form")
    form.locator("select[name=to_status]").select_option("under_investigation")
    form.locator("input[name=reason_code]").fill("investigation_started")
    form.locator("textarea[name=reason_text]").fill("Visited the school with the OVCS officer.")
    form.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: f"/ui/cases/{case_id}?done=transition" in url)

    assert page.get_attribute("#case-status", "data-status") == "under_investigation"
    assert page.locator("[role=status]").inner_text() == "The case status was changed."
    entry = page.locator("ol.timeline li[data-kind=status_changed]")
    assert entry.count() == 1
    assert "investigation_started" in entry.inner_text()
    assert "inv-browser" in entry.inner_text()

    # The server keeps the rules: a transition the case does not allow is refused with the
    # allowed ones, even if a stale or hand-made form asks for it.
    response = page.request.post(
        f"{base}/ui/cases/{case_id}/transitions",
        form={"to_status": "charged", "reason_code": "charged_by_prosecutor"},
        headers={"Origin": base},
    )
    assert response.status == 409
    assert "Suspect identified" in response.text()

    page.goto(f"{base}/ui/cases/{case_id}?lang=km")
    assert page.locator("h2#timeline").inner_text() == "កាលប្បវត្តិ"
    assert page.get_attribute("html", "lang") == "km"
