"""The forensic staff's pages in headless Chromium, against a forensics service process: an
officer registers an item and gets its label (a QR code of its id), scans it to hand it over,
and a second officer accepts it from their pending list; then the history shows the new
holder. Also in Khmer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from cpu_platform.devstack.kafka import ensure_topics, free_port
from cpu_platform.testing.kafka_tools import bearer
from cpu_platform.testing.processes import ServiceProcess
from cpu_shared.messaging.topics import all_topic_names
from cpu_shared.security.auth import AuthSettings, mint_dev_token

pytestmark = pytest.mark.e2e

ICT = ZoneInfo("Asia/Phnom_Penh")


@pytest.fixture
def forensics_url(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str], tmp_path: Path
) -> Iterator[str]:
    ensure_topics(kafka_bootstrap_servers, all_topic_names())
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "FORENSICS_PORT": str(port),
        "FORENSICS_DATABASE_URL": make_database("forensics"),
        "FORENSICS_LEDGER_SIGNING_KEY_FILE": str(tmp_path / "ledger-key.pem"),
    }
    proc = ServiceProcess("cpu_forensics.app", env, tmp_path / "forensics.log", port)
    proc.start(timeout=180)
    try:
        yield proc.url
    finally:
        try:
            proc.terminate(timeout=60)
        finally:
            proc.kill()


def sign_in(page: Any, base: str, user: str, next_path: str) -> None:
    token = mint_dev_token(AuthSettings(), user, ["forensic_officer"], teams=["FST"])
    page.goto(f"{base}/ui/login?next={next_path}")
    page.fill("#token", token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{next_path}*")


def test_register_label_scan_hand_over_and_accept(
    browser_page: Any, chromium: Any, forensics_url: str
) -> None:
    page = browser_page
    case_id = str(uuid.uuid4())
    collected = (datetime.now(ICT) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")

    # 1. Register an item: the label with its QR code follows.
    sign_in(page, forensics_url, "fo.dara", "/ui/evidence/new")
    page.get_by_label("Case id").fill(case_id)
    page.select_option("#type", "clothing")
    page.get_by_label("Description").fill("Child's blue school shirt, blood-stained collar")
    page.get_by_label("Collected at (Cambodia time)").fill(collected)
    page.get_by_label("Collected where").fill("Victim's home, Boeung Kak")
    page.get_by_label("Seal number", exact=True).fill("SEAL-UI-0001")
    page.get_by_label("Storage location").fill("FST store, shelf B3")
    page.get_by_role("button", name="Register and print the label").click()
    page.wait_for_url("**/label")
    item_id = page.get_by_test_id("item-id").inner_text().strip()
    assert uuid.UUID(item_id)
    qr = page.locator(".qr svg")
    assert qr.count() == 1
    assert qr.locator("title").text_content() == item_id
    assert page.get_by_role("button", name="Print the label").is_visible()  # label.js ran

    # 2. Scan to transfer: the scanner types the id and Enter.
    page.get_by_role("link", name="Scan to transfer").first.click()
    page.get_by_label("Item id").fill(item_id)
    page.get_by_label("Item id").press("Enter")
    page.wait_for_url(f"**/ui/evidence/{item_id}/transfer")
    page.select_option("#kind", "transfer")
    page.get_by_label("Receiver (user id)").fill("fo.sokha")
    page.get_by_label("Purpose").fill("DNA analysis of the collar")
    page.get_by_label("Where").fill("National police lab, intake desk")
    page.get_by_role("button", name="Hand over", exact=True).click()
    page.wait_for_url(f"**/ui/evidence/{item_id}?sent=1")
    assert page.get_by_test_id("custodian").inner_text() == "fo.dara"
    assert page.get_by_test_id("status").inner_text() == "Awaiting acceptance"

    # 3. The receiver accepts it from their pending list.
    other = chromium.new_context(locale="en-GB")
    try:
        receiver = other.new_page()
        sign_in(receiver, forensics_url, "fo.sokha", "/ui/pending")
        row = receiver.locator("tr", has_text=item_id)
        assert row.count() == 1
        row.get_by_role("button", name="Accept").click()
        receiver.wait_for_url(f"**/ui/evidence/{item_id}?accepted=1")
        assert receiver.get_by_test_id("custodian").inner_text() == "fo.sokha"
        assert receiver.get_by_test_id("status").inner_text() == "In custody"
        steps = receiver.locator("table tbody tr")
        assert steps.count() == 2
        assert "fo.dara" in steps.nth(1).inner_text() and "fo.sokha" in steps.nth(1).inner_text()

        # The same page in Khmer.
        receiver.goto(f"{forensics_url}/ui/evidence/{item_id}?lang=km")
        assert receiver.locator("h1").inner_text() == "ប្រវត្តិវត្ថុតាង"
        assert receiver.locator("html").get_attribute("lang") == "km"
    finally:
        other.close()

    # The API agrees, and the ledger holds both steps.
    with httpx.Client(base_url=forensics_url, timeout=60) as client:
        custody = client.get(
            f"/api/v1/evidence/{item_id}/custody",
            headers=bearer("supervisor", user="sup.chan"),
        ).json()
        assert [e["to_user"] for e in custody["events"]] == ["fo.dara", "fo.sokha"]
        verified = client.get("/api/v1/ledger/verify", headers=bearer("auditor", user="aud")).json()
        assert verified["ok"] is True and verified["tree_size"] == 2


def test_a_refused_handover_is_shown_on_the_page(browser_page: Any, forensics_url: str) -> None:
    page = browser_page
    sign_in(page, forensics_url, "fo.dara", "/ui/evidence/new")
    page.get_by_label("Case id").fill(str(uuid.uuid4()))
    page.select_option("#type", "document")
    page.get_by_label("Description").fill("Handwritten note")
    page.get_by_label("Collected at (Cambodia time)").fill(
        (datetime.now(ICT) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    )
    page.get_by_label("Collected where").fill("School office")
    page.get_by_label("Seal number", exact=True).fill("SEAL-UI-0002")
    page.get_by_label("Storage location").fill("FST store")
    page.get_by_role("button", name="Register and print the label").click()
    page.wait_for_url("**/label")
    item_id = page.get_by_test_id("item-id").inner_text().strip()
    page.goto(f"{forensics_url}/ui/evidence/{item_id}/transfer")
    page.get_by_label("Receiver (user id)").fill("fo.dara")  # to oneself
    page.get_by_label("Purpose").fill("Nothing")
    page.get_by_label("Where").fill("Here")
    page.get_by_role("button", name="Hand over", exact=True).click()
    alert = page.get_by_role("alert")
    assert "self_transfer" in alert.inner_text()
