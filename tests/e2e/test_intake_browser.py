"""Issue 5 in a real headless Chromium against the intake service process: an officer signs in,
fills in the referral form in Khmer, submits it and sees the reference."""

from __future__ import annotations

import re

import httpx
import pytest

from cpu_platform.testing.kafka_tools import bearer
from cpu_platform.testing.stack import PlatformStack
from cpu_shared.security.auth import AuthSettings, mint_dev_token

pytestmark = pytest.mark.e2e

TIMEOUT_MS = 60_000  # generous: the machine is shared; nothing here measures time
CHILD_KM = "សុខ ចាន់ធីតា"
REPORTER_KM = "កែវ សុភា"


def test_an_officer_submits_the_form_in_khmer(platform_stack: PlatformStack, browser_page) -> None:
    base = platform_stack.url("intake")
    page = browser_page
    page.set_default_timeout(TIMEOUT_MS)

    page.goto(f"{base}/ui/login?next=/ui/referrals/new")
    page.fill("#token", mint_dev_token(AuthSettings(), "officer.browser", ["intake_officer"]))
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/referrals/new$"))

    page.goto(f"{base}/ui/referrals/new?lang=km")
    assert page.locator("html").get_attribute("lang") == "km"
    assert page.locator("legend", has_text="អ្នករាយការណ៍").count() == 1  # "Reporter"

    page.fill("#reporter-name", REPORTER_KM)
    page.fill("#reporter-phone", "012 888 451")
    page.fill("#children-0-name_km", CHILD_KM)
    page.select_option("#children-0-sex", "female")
    page.fill("#children-0-age_estimate", "11")
    page.select_option("#children-0-province_code", "08")
    page.fill("#children-0-village", "ភូមិព្រែកតាកូវ")
    page.check("input[name=concerns][value=physical_abuse]")
    page.check("input[name=injuries]")
    page.fill("#narrative", "កុមារមានស្នាមជាំលើដៃ។")
    page.click("#submit-referral")

    reference = page.locator("#reference")
    reference.wait_for()
    text = reference.inner_text().strip()
    assert re.fullmatch(r"REF-\d{4}-\d{6}", text), text
    assert page.locator("#priority").inner_text().strip() == "P1"  # injured
    assert page.get_by_text("ការបញ្ជូនត្រូវបានកត់ត្រា").count() >= 1  # "Referral recorded"

    # The referral holds the Khmer name as typed.
    listing = httpx.get(
        f"{base}/api/v1/referrals",
        params={"reference": text},
        headers=bearer("supervisor"),
        timeout=30,
    ).json()
    (item,) = listing["items"]
    referral = httpx.get(
        f"{base}/api/v1/referrals/{item['id']}", headers=bearer("supervisor"), timeout=30
    ).json()
    assert referral["children"][0]["name_km"] == CHILD_KM
    assert referral["reporter"]["name"] == REPORTER_KM
    assert referral["reporter"]["phone"] == "+85512888451"


def test_a_mistake_is_shown_next_to_its_field_in_khmer(
    platform_stack: PlatformStack, browser_page
) -> None:
    base = platform_stack.url("intake")
    page = browser_page
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base}/ui/login?next=/ui/referrals/new")
    page.fill("#token", mint_dev_token(AuthSettings(), "officer.browser", ["intake_officer"]))
    page.click("form[action='/ui/login'] button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/referrals/new$"))
    page.goto(f"{base}/ui/referrals/new?lang=km")
    page.fill("#reporter-name", REPORTER_KM)
    page.fill("#children-0-name_km", CHILD_KM)
    page.fill("#children-0-age_estimate", "19")
    page.select_option("#children-0-province_code", "12")
    page.check("input[name=concerns][value=neglect]")
    page.click("#submit-referral")
    error = page.locator("#children-0-age_estimate-error")
    error.wait_for()
    assert "អាយុត្រូវតែនៅចន្លោះពី ០ ដល់ ១៧ ឆ្នាំ។" in error.inner_text()
    assert page.locator("#children-0-name_km").input_value() == CHILD_KM
