"""Issue 9: the reporting dashboard in headless Chromium, against a reporting service process fed
through the real broker: figures, SVG charts by month and by province, English and Khmer, the
CSV and PDF exports, and the refusal of roles that may not read the figures."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cpu_platform.devstack.kafka import ensure_topics, free_port
from cpu_platform.testing.kafka_tools import bearer, produce
from cpu_platform.testing.processes import ServiceProcess
from cpu_reporting import scenario
from cpu_shared.messaging.topics import all_topic_names
from cpu_shared.security.auth import AuthSettings, mint_dev_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def reporting(
    kafka_bootstrap_servers: str, postgres_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, int]]:
    ensure_topics(kafka_bootstrap_servers, all_topic_names())
    year = random.randint(2200, 2999)
    s = scenario.build(year)
    db = f"e2e_reporting_ui_{uuid.uuid4().hex[:8]}"
    postgres_server.create_database(db)
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "REPORTING_PORT": str(port),
        "REPORTING_DATABASE_URL": postgres_server.url(db),
        "REPORTING_SERVICE_NAME": f"reporting-ui-{uuid.uuid4().hex[:8]}",
        "REPORTING_SUPPRESSION_THRESHOLD": "2",
    }
    log = tmp_path_factory.mktemp("reporting-ui") / "reporting.log"
    proc = ServiceProcess("cpu_reporting.app", env, Path(log), port).start(timeout=180)
    try:

        async def feed() -> None:
            for topic, envelope in s.messages:  # one by one: the order is the scenario's
                await produce(
                    kafka_bootstrap_servers,
                    topic,
                    [(envelope.aggregate_id.encode(), envelope.to_bytes())],
                )

        # In a thread of its own: the browser's driver may hold this thread's event loop.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, feed()).result()
        deadline = time.monotonic() + 180
        while True:
            doc = httpx.get(
                f"{proc.url}/api/v1/reports/summary",
                params={"from": f"{year}-01-01", "to": f"{year}-12-31"},
                headers=bearer("supervisor"),
                timeout=10,
            ).json()
            if doc.get("investigations") == 5 and doc.get("icac_tips_received") == 3:
                break
            assert time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.5)
        yield proc, year
    finally:
        proc.kill()
        postgres_server.drop_database(db)


def sign_in(page: Any, base: str, role: str, target: str) -> None:
    token = mint_dev_token(AuthSettings(), "dashboard-user", [role])
    page.goto(f"{base}/ui/login?next={target}")
    page.fill("#token", token)
    page.click("button[type=submit]")


def test_dashboard_shows_figures_and_charts_in_english_and_khmer(
    reporting: tuple[ServiceProcess, int], browser_page: Any
) -> None:
    proc, year = reporting
    page = browser_page
    target = f"/ui/?from={year}-01-01&to={year}-12-31"
    sign_in(page, proc.url, "supervisor", target.replace("&", "%26"))
    page.wait_for_selector("#figures")
    assert page.locator("tr[data-figure=investigations] td").inner_text() == "5"
    assert page.locator("tr[data-figure=arrest_rate] td").inner_text() == "60%"
    assert page.locator("tr[data-figure=convictions] td").inner_text() == "<2"
    # Charts: server-rendered SVG, one entry per month and per province: a bar, or the
    # suppression marker as text where the count is hidden.
    assert page.locator("svg#chart-month").get_attribute("role") == "img"
    assert page.locator("svg#chart-month [data-label]").count() == 12
    assert page.locator("svg#chart-month rect.bar").count() >= 1
    assert page.locator("svg#chart-month title").first.text_content()
    provinces = page.locator("svg#chart-province [data-label]")
    labels = {provinces.nth(i).get_attribute("data-label") for i in range(provinces.count())}
    assert labels == {"02", "12", "17"}
    assert page.locator("#by-province tr[data-province='12'] td").first.inner_text() == "3"
    assert page.locator("script:not([src])").count() == 0  # strict CSP: no inline script
    # Khmer.
    page.goto(f"{proc.url}{target}&lang=km")
    page.wait_for_selector("#figures")
    assert page.locator("html").get_attribute("lang") == "km"
    assert "តួលេខ" in page.locator("#figures-h").inner_text()
    assert "ការស៊ើបអង្កេត" in page.locator("#figures").inner_text()
    assert page.locator("svg#chart-province").count() == 1


def test_who_may_see_and_export(reporting: tuple[ServiceProcess, int], browser_page: Any) -> None:
    proc, year = reporting
    params = {"from": f"{year}-01-01", "to": f"{year}-12-31"}
    get: Callable[..., httpx.Response] = lambda path, role, **kw: httpx.get(  # noqa: E731
        f"{proc.url}{path}", headers=bearer(role), timeout=60, **kw
    )
    assert get("/api/v1/reports/summary", "investigator", params=params).status_code == 403
    assert get("/api/v1/reports/summary", "ops", params=params).status_code == 403
    assert get("/api/v1/reports/summary.csv", "auditor", params=params).status_code == 403
    csv = get("/api/v1/reports/summary.csv", "supervisor", params=params)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert "province,12," in csv.text and "<2" in csv.text
    pdf = get("/api/v1/reports/annual-report.pdf", "supervisor", params={"year": year})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # The page refuses a role without report.read.
    sign_in(browser_page, proc.url, "investigator", "/ui/")
    assert "may not report.read" in browser_page.content()
