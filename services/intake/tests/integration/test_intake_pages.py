"""The officers' pages without a browser: the form in Khmer and English, problems next to
their fields, today's list by priority, the matches with their decision buttons."""

from __future__ import annotations

import re
from typing import Any

import pytest

from cpu_platform.testing.kafka_tools import bearer

pytestmark = pytest.mark.integration


def session(*roles: str, **claims: Any) -> dict[str, str]:
    token = bearer(*(roles or ("intake_officer",)), **claims)["Authorization"][7:]
    return {"Cookie": f"cpu_session={token}"}


def form(body: dict[str, Any], **extra: str) -> dict[str, Any]:
    child = body["children"][0]
    fields: dict[str, Any] = {
        "children_count": "1",
        "perpetrators_count": "1",
        "source": body["source"],
        "received_at": "2026-01-05T09:30",
        "reporter-name": body["reporter"]["name"],
        "reporter-phone": body["reporter"]["phone"],
        "concerns": body["concerns"],
        "narrative": body["narrative"],
    }
    for name in ("given_name", "family_name", "name_km", "sex", "date_of_birth", "province_code"):
        fields[f"children-0-{name}"] = child[name]
    fields["children-0-village"] = child["village"]
    return {**fields, **extra}


async def test_pages_need_a_session_and_the_right_role(intake) -> None:
    response = await intake.client.get("/ui/referrals/new")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/ui/login")
    refused = await intake.client.get("/ui/referrals/new", headers=session("supervisor"))
    assert refused.status_code == 403
    assert (await intake.client.get("/ui/referrals", headers=session("ops"))).status_code == 403


async def test_the_form_in_khmer_has_no_inline_script_or_style(intake) -> None:
    response = await intake.client.get("/ui/referrals/new?lang=km", headers=session())
    assert response.status_code == 200
    html = response.text
    assert '<html lang="km">' in html
    assert "ឈ្មោះជាអក្សរខ្មែរ" in html  # "Name in Khmer script"
    assert "ភ្នំពេញ" in html  # Phnom Penh in the province list
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html and "<style" not in html
    assert "cpu_lang=km" in response.headers.get("set-cookie", "")


async def test_submitting_the_form_shows_the_reference_and_priority(intake, body) -> None:
    sent = body(concerns=["sexual_abuse"])
    response = await intake.client.post(
        "/ui/referrals", data=form(sent), headers=session(user="officer.sophea")
    )
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert re.fullmatch(r"/ui/referrals/[0-9a-f-]{36}\?created=1", location)
    page = await intake.client.get(location, headers=session())
    assert page.status_code == 200
    reference = re.search(r'id="reference">(REF-\d{4}-\d{6})<', page.text)
    assert reference, page.text
    assert 'id="priority">P2<' in page.text
    assert sent["children"][0]["name_km"] in page.text  # the officer sees what was recorded
    assert page.headers["cache-control"] == "no-store"
    today = await intake.client.get("/ui/referrals", headers=session())
    assert reference[1] in today.text


async def test_problems_are_shown_next_to_their_fields_in_the_page_language(intake, body) -> None:
    bad = form(body(), **{"children-0-date_of_birth": "2999-01-01", "reporter-phone": "123"})
    bad.pop("concerns")
    response = await intake.client.post(
        "/ui/referrals?lang=km", data=bad, headers=session() | {"Accept-Language": "km"}
    )
    assert response.status_code == 422
    html = response.text
    for field, text in (
        ("children-0-date_of_birth", "ថ្ងៃខែឆ្នាំកំណើតស្ថិតនៅពេលអនាគត។"),
        ("reporter-phone", "មិនមែនជាលេខទូរស័ព្ទត្រឹមត្រូវទេ"),
        ("concerns", "សូមផ្តល់កង្វល់យ៉ាងហោចណាស់មួយ។"),
    ):
        assert re.search(rf'id="{field}-error"[^>]*>[^<]*{text}', html), field
    assert 'id="children-0-date_of_birth" name="children-0-date_of_birth"' in html
    assert 'aria-invalid="true"' in html
    # What the officer typed is kept.
    assert bad["children-0-name_km"] in html
    # htmx swaps only 2xx answers, so it gets the same page as 200.
    hx = await intake.client.post(
        "/ui/referrals", data=bad, headers=session() | {"HX-Request": "true"}
    )
    assert hx.status_code == 200 and "field-error" in hx.text


async def test_adding_a_child_keeps_what_was_typed(intake, body) -> None:
    sent = form(body(), action="add_child")
    response = await intake.client.post("/ui/referrals", data=sent, headers=session())
    assert response.status_code == 200
    assert 'name="children-1-name_km"' in response.text
    assert sent["children-0-name_km"] in response.text
    assert "field-error" not in response.text


async def test_matches_with_decision_buttons(intake, body) -> None:
    first = body()
    earlier = await intake.submit(first)
    later = await intake.submit(body(children=first["children"]))
    page = await intake.client.get(f"/ui/referrals/{later['id']}", headers=session())
    assert page.status_code == 200
    assert earlier["reference"] in page.text
    assert 'value="same_child"' in page.text and 'value="new_child"' in page.text
    response = await intake.client.post(
        f"/ui/referrals/{later['id']}/match-decision",
        data={"decision": "same_child", "referral_id": earlier["id"]},
        headers=session(),
    )
    assert response.status_code == 303
    after = await intake.client.get(response.headers["location"], headers=session())
    assert 'value="same_child"' not in after.text  # decided: no more buttons
    assert "Linked to an earlier referral" in after.text
    again = await intake.client.post(
        f"/ui/referrals/{later['id']}/match-decision",
        data={"decision": "new_child", "referral_id": earlier["id"]},
        headers=session(),
    )
    assert again.headers["location"].endswith("?error=match_decision_not_open")
    shown = await intake.client.get(again.headers["location"], headers=session())
    assert "Match decisions can only be made on a triaged referral" in shown.text
    # A write from another site is refused, cookie or not.
    forged = await intake.client.post(
        f"/ui/referrals/{later['id']}/match-decision",
        data={"decision": "new_child", "referral_id": earlier["id"]},
        headers=session() | {"Origin": "https://evil.example"},
    )
    assert forged.status_code == 403
