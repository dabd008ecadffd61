"""The icac service as its own process (uvicorn, PostgreSQL, the broker, the generated GeoIP
database): an analyst works the triage queue in headless Chromium (queue, the tip page with the
reasons for its priority and its cluster, claim, escalate) and the escalation reaches Kafka as
``tip.escalated``; the pages in Khmer; and a 100 MB file streamed to the import is refused with
a clear error while nothing else is lost."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cpu_icac.adapters.geoip import write_test_database
from cpu_platform.devstack.kafka import ensure_topics, free_port
from cpu_platform.testing.kafka_tools import bearer, read_all, unique
from cpu_platform.testing.processes import ServiceProcess
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.topics import TIP_EVENTS, all_topic_names
from cpu_shared.security.auth import AuthSettings, mint_dev_token
from cpu_shared.security.crypto import Keyring

pytestmark = pytest.mark.e2e

SHARED = {"screen_names": ["subject_e2e"], "emails": [], "phones": [], "ip_events": []}


def _report(report_id: str, **changes: Any) -> dict[str, Any]:
    at = (datetime.now(UTC) - timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    report: dict[str, Any] = {
        "provider": "hsi",
        "report_id": report_id,
        "incident_type": "online_enticement",
        "incident_at": at,
        "provider_priority": "1",
        "escalation_reason": "Adult arranging to meet the child this weekend.",
        "reported_persons": [
            {
                **SHARED,
                "ip_events": [{"ip": "198.51.100.23", "event": "login", "at": at}],
            }
        ],
        "victims": [{"age_estimate": 13, "sex": "female"}],
        "narrative": "Synthetic end-to-end tip.",
    }
    report.update(changes)
    return report


@pytest.fixture
def icac_url(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str], tmp_path: Path
) -> Iterator[str]:
    ensure_topics(kafka_bootstrap_servers, all_topic_names())
    topic = unique("icac.tips.inbound")
    ensure_topics(kafka_bootstrap_servers, {topic: 1, f"{topic}.dlq": 1})
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "ICAC_PORT": str(port),
        "ICAC_DATABASE_URL": make_database("icac"),
        "ICAC_GEOIP_DATABASE": str(write_test_database(tmp_path / "city.mmdb")),
        "ICAC_INBOUND_TOPIC": topic,
        "ICAC_INBOUND_GROUP": unique("tips-inbound"),
    }
    proc = ServiceProcess("cpu_icac.app", env, tmp_path / "icac.log", port)
    proc.start(timeout=180)
    try:
        yield proc.url
    finally:
        try:
            proc.terminate(timeout=60)
        finally:
            proc.kill()


def _events(bootstrap: str) -> list[EventEnvelope]:
    """Every event on icac.tip.events (read in a thread: Playwright's loop runs in this one)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        records = pool.submit(asyncio.run, read_all(bootstrap, TIP_EVENTS.name)).result()
    return [EventEnvelope.from_bytes(r.value) for r in records]


def _sign_in(page: Any, base: str, user: str, next_path: str) -> None:
    token = mint_dev_token(AuthSettings(), user, ["icac_analyst"])
    page.goto(f"{base}/ui/login?next={next_path}")
    page.fill("#token", token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}{next_path}*")


def test_an_analyst_triages_and_escalates_in_the_browser(
    browser_page: Any, icac_url: str, kafka_bootstrap_servers: str
) -> None:
    analyst = bearer("icac_analyst", user="analyst.e2e")
    older = httpx.post(
        f"{icac_url}/api/v1/tips",
        json=_report("HSI-E2E-1", provider_priority="3", escalation_reason=None),
        headers=analyst,
        timeout=60,
    )
    assert older.status_code == 201, older.text
    created = httpx.post(
        f"{icac_url}/api/v1/tips", json=_report("HSI-E2E-2"), headers=analyst, timeout=60
    )
    assert created.status_code == 201, created.text
    tip_id = created.json()["tip_id"]

    page = browser_page
    _sign_in(page, icac_url, "analyst.e2e", "/ui/tips")
    queue = page.locator("#queue")
    assert "HSI-E2E-2" in queue.inner_text()
    first_row = queue.locator("tbody tr").first
    assert "HSI-E2E-2" in first_row.inner_text() and "P1" in first_row.inner_text()

    page.get_by_role("link", name="hsi HSI-E2E-2").click()
    page.wait_for_url(f"**/ui/tips/{tip_id}")
    reasons = page.locator("#reasons").inner_text()
    assert "Online enticement: an adult seeking contact with a child." in reasons
    assert "The provider asked for urgent handling." in reasons
    assert "Linked to other tips about the same subject." in reasons
    cluster = page.locator("#cluster").inner_text()
    assert "HSI-E2E-1" in cluster and "screen name" in cluster
    assert page.locator("#priority").inner_text().strip() == "P1"

    page.locator("#claim").click()
    page.wait_for_url(f"**/ui/tips/{tip_id}?done=claim")
    assert "You hold this tip." in page.content()
    page.select_option("#disposition", "escalate")
    page.locator("#dispose").click()
    page.wait_for_url(f"**/ui/tips/{tip_id}?done=dispose")
    assert "Escalated" in page.locator("#status").inner_text()
    assert page.locator("#claim").count() == 0

    detail = httpx.get(f"{icac_url}/api/v1/tips/{tip_id}", headers=analyst, timeout=30).json()
    assert detail["status"] == "escalated" and detail["disposed_by"] == "analyst.e2e"

    # The relay publishes tip.escalated for casework: the tip's pseudonym, codes, counts.
    pseudonym = Keyring.load().pseudonymizer().pseudonym("tip", tip_id)
    bootstrap = kafka_bootstrap_servers
    deadline = time.monotonic() + 120
    escalated: list[EventEnvelope] = []
    while not escalated:
        assert time.monotonic() < deadline, "tip.escalated never reached Kafka"
        escalated = [
            e
            for e in _events(bootstrap)
            if e.aggregate_id == pseudonym and e.event_type == "tip.escalated"
        ]
        time.sleep(0.5)
    data = escalated[0].data
    assert data["priority"] == "P1" and data["province_code"] == "17"
    assert data["victim_count"] == 1 and data["youngest_victim_age"] == 13
    assert "subject_e2e" not in json.dumps(data) and tip_id not in json.dumps(data)


def test_the_pages_in_khmer(browser_page: Any, icac_url: str) -> None:
    created = httpx.post(
        f"{icac_url}/api/v1/tips",
        json=_report("HSI-E2E-KM"),
        headers=bearer("icac_analyst"),
        timeout=60,
    )
    tip_id = created.json()["tip_id"]
    page = browser_page
    _sign_in(page, icac_url, "analyst.km", "/ui/tips")
    page.goto(f"{icac_url}/ui/tips?lang=km")
    assert page.locator("h1").inner_text() == "ជួររង់ចាំចាត់អាទិភាព"
    page.goto(f"{icac_url}/ui/tips/{tip_id}")
    assert "ហេតុអ្វីបានជាអាទិភាពនេះ" in page.locator("#reasons").inner_text()
    assert "ការល្បួងតាមអនឡាញ" in page.locator("#reasons").inner_text()
    assert page.locator("html").get_attribute("lang") == "km"


def test_a_100_mb_import_is_refused_and_nothing_else_is_lost(icac_url: str) -> None:
    analyst = bearer("icac_analyst", user="analyst.import")
    kept = httpx.post(
        f"{icac_url}/api/v1/tips", json=_report("HSI-E2E-KEEP"), headers=analyst, timeout=60
    )
    assert kept.status_code == 201

    line = (json.dumps(_report("HSI-E2E-BIG")) + "\n").encode()
    block = line * (1024 * 1024 // len(line))

    def hundred_megabytes() -> Iterator[bytes]:
        sent = 0
        while sent < 100 * 1024 * 1024:
            yield block
            sent += len(block)

    try:
        response = httpx.post(
            f"{icac_url}/api/v1/tips/import",
            content=hundred_megabytes(),
            headers={"Content-Type": "application/x-ndjson", **analyst},
            timeout=120,
        )
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        # The server answered 413 and closed while the client was still sending: what it
        # answered is on the import job.
        response = None
    if response is not None:
        assert response.status_code == 413, response.text
        assert "larger than" in response.json()["detail"]
    jobs = httpx.get(f"{icac_url}/api/v1/tip-imports", headers=analyst, timeout=30).json()
    assert jobs["items"][0]["status"] == "refused"
    assert jobs["items"][0]["refusal_code"] == "too_large"

    # Nothing of it is stored, what was there is still there, and a good import works.
    listed = httpx.get(f"{icac_url}/api/v1/tips", headers=analyst, timeout=30).json()
    assert [t["report_id"] for t in listed["items"]] == ["HSI-E2E-KEEP"]
    good = httpx.post(
        f"{icac_url}/api/v1/tips/import",
        content=json.dumps(_report("HSI-E2E-AFTER")).encode(),
        headers={"Content-Type": "application/x-ndjson", **analyst},
        timeout=60,
    )
    assert good.status_code == 200 and good.json()["created"] == 1
    assert httpx.get(f"{icac_url}/ready", timeout=30).status_code == 200
