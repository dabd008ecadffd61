"""The referral API of CONTRACT.md sections 5 and 6 on real PostgreSQL and the real broker:
status codes, every validation error with its officer-facing message, the record rule, list
filters, matches, match decisions and withdrawal."""

from __future__ import annotations

import random
import re
import string
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from cpu_intake.domain.messages import MESSAGES
from cpu_intake.domain.referral import cambodia_date
from cpu_platform.testing.kafka_tools import bearer, produce_envelopes, wait_until
from cpu_shared.contracts import new_envelope
from cpu_shared.contracts.casework import CaseOpened

pytestmark = pytest.mark.integration

OFFICER = bearer("intake_officer", user="officer.dara")


def _future(**delta: int) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def test_a_referral_is_created_with_reference_priority_and_status(intake, body) -> None:
    response = await intake.client.post("/api/v1/referrals", json=body(), headers=OFFICER)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) >= {"id", "reference", "priority", "status"}
    uuid.UUID(created["id"])
    year = cambodia_date(datetime.now(UTC)).year
    assert re.fullmatch(rf"REF-{year}-\d{{6}}", created["reference"]), created
    assert created["priority"] == "P3"
    assert created["status"] == "triaged"
    assert created["teams"] == ["OVCS"]
    assert response.headers["location"] == f"/api/v1/referrals/{created['id']}"


async def test_the_referral_reads_back_decrypted_with_the_phone_in_e164(intake, body) -> None:
    sent = body()
    created = await intake.submit(sent)
    response = await intake.client.get(f"/api/v1/referrals/{created['id']}", headers=OFFICER)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["reference"] == created["reference"]
    assert got["reporter"]["phone"] == "+85512345678"
    assert got["reporter"]["name"] == sent["reporter"]["name"]
    child = got["children"][0]
    for name in ("given_name", "family_name", "name_km", "village", "district", "commune"):
        assert child[name] == sent["children"][0][name]
    assert child["date_of_birth"] == "2016-05-04"
    assert child["age_years"] in (9, 10)
    assert got["narrative"] == sent["narrative"]
    assert got["alleged_perpetrators"][0]["name"] == sent["alleged_perpetrators"][0]["name"]
    assert got["concerns"] == ["neglect"]
    assert got["rule_ids"] == ["victim_support"]
    assert got["submitted_by"] == "tester"


@pytest.mark.parametrize(
    ("rule", "changes", "priority", "teams"),
    [
        ("immediate danger", {"immediate_danger": True}, "P1", ["OVCS"]),
        ("injuries", {"injuries": True}, "P1", ["OVCS"]),
        ("homicide", {"concerns": ["homicide"]}, "P1", ["HIT", "OVCS"]),
        (
            "perpetrator with access",
            {"alleged_perpetrators": [{"relationship": "father", "has_access_to_child": True}]},
            "P1",
            ["OVCS"],
        ),
        ("sexual abuse", {"concerns": ["sexual_abuse"]}, "P2", ["OVCS"]),
        ("rape", {"concerns": ["rape"]}, "P2", ["OVCS"]),
        ("trafficking", {"concerns": ["trafficking"]}, "P2", ["OVCS"]),
        ("online", {"concerns": ["online_exploitation"]}, "P2", ["ICAC", "OVCS"]),
        ("anything else", {"concerns": ["child_labour"]}, "P3", ["OVCS"]),
    ],
)
async def test_triage_through_the_api(intake, body, rule, changes, priority, teams) -> None:
    created = await intake.submit(body(**changes))
    assert (created["priority"], created["teams"]) == (priority, teams), rule


def _child(**changes: Any) -> dict[str, Any]:
    return {"children": [{"age_estimate": 9, "province_code": "12", **changes}]}


# (case, changes to a valid body, the field, the officer-facing code)
VALIDATION_ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "received in the future",
        {"received_at": _future(days=2)},
        "received_at",
        "received_at_in_future",
    ),
    (
        "received without zone",
        {"received_at": "2026-01-05T09:00:00"},
        "received_at",
        "received_at_no_timezone",
    ),
    ("received not a date", {"received_at": "yesterday"}, "received_at", "invalid_datetime"),
    ("age above 17", _child(age_estimate=18), "children.0.age_estimate", "age_out_of_range"),
    ("age below 0", _child(age_estimate=-1), "children.0.age_estimate", "age_out_of_range"),
    ("age not a number", _child(age_estimate="nine"), "children.0.age_estimate", "invalid_number"),
    (
        "born in the future",
        _child(date_of_birth="2999-01-01"),
        "children.0.date_of_birth",
        "date_of_birth_in_future",
    ),
    (
        "born an adult",
        _child(date_of_birth="1990-01-01"),
        "children.0.date_of_birth",
        "date_of_birth_adult",
    ),
    (
        "date of birth not a date",
        _child(date_of_birth="04/05/2016"),
        "children.0.date_of_birth",
        "invalid_date",
    ),
    (
        "no age at all",
        {"children": [{"province_code": "12"}]},
        "children.0.date_of_birth",
        "age_or_date_of_birth_required",
    ),
    (
        "unknown province",
        _child(province_code="26"),
        "children.0.province_code",
        "unknown_province",
    ),
    (
        "province missing",
        {"children": [{"age_estimate": 9}]},
        "children.0.province_code",
        "required",
    ),
    ("khmer name in latin", _child(name_km="Sokha"), "children.0.name_km", "name_km_not_khmer"),
    ("name too long", _child(given_name="a" * 101), "children.0.given_name", "text_too_long"),
    ("unknown sex", _child(sex="x"), "children.0.sex", "invalid_choice"),
    ("no children", {"children": []}, "children", "no_children"),
    (
        "too many children",
        {"children": [_child()["children"][0]] * 21},
        "children",
        "too_many_items",
    ),
    ("no concerns", {"concerns": []}, "concerns", "no_concerns"),
    ("unknown concern", {"concerns": ["witchcraft"]}, "concerns.0", "unknown_concern"),
    ("unknown source", {"source": "radio"}, "source", "unknown_source"),
    ("source missing", {"source": None}, "source", "required"),
    (
        "invalid phone",
        {"reporter": {"name": "Dara", "phone": "12345"}},
        "reporter.phone",
        "invalid_phone",
    ),
    (
        "anonymous with a name",
        {"reporter": {"anonymous": True, "name": "Dara"}},
        "reporter.name",
        "anonymous_reporter_identified",
    ),
    (
        "anonymous with a phone",
        {"reporter": {"anonymous": True, "phone": "012 345 678"}},
        "reporter.phone",
        "anonymous_reporter_identified",
    ),
    (
        "reporter unidentified",
        {"reporter": {"relationship": "aunt"}},
        "reporter.name",
        "reporter_unidentified",
    ),
    (
        "anonymous not yes or no",
        {"reporter": {"anonymous": "perhaps"}},
        "reporter.anonymous",
        "invalid_yes_no",
    ),
    ("narrative too long", {"narrative": "x" * 10_001}, "narrative", "narrative_too_long"),
    (
        "perpetrator too old",
        {"alleged_perpetrators": [{"age_estimate": 121}]},
        "alleged_perpetrators.0.age_estimate",
        "perpetrator_age_out_of_range",
    ),
    ("unknown field", {"favourite_colour": "blue"}, "favourite_colour", "unknown_field"),
    (
        "danger not yes or no",
        {"immediate_danger": "sometimes"},
        "immediate_danger",
        "invalid_yes_no",
    ),
]


@pytest.mark.parametrize(
    ("case", "changes", "field", "code"), VALIDATION_ERRORS, ids=[v[0] for v in VALIDATION_ERRORS]
)
async def test_every_validation_error_has_an_officer_facing_message(
    intake, body, case, changes, field, code
) -> None:
    sent = {key: value for key, value in body(**changes).items() if value is not None}
    response = await intake.client.post("/api/v1/referrals", json=sent, headers=OFFICER)
    assert response.status_code == 422, (case, response.text)
    problems = response.json()["detail"]
    found = [p for p in problems if p["field"] == field]
    assert found, (case, problems)
    problem = found[0]
    assert problem["code"] == code, (case, problems)
    template = re.escape(MESSAGES[code].en)
    assert re.fullmatch(re.sub(r"\\\{\w+\\\}", ".*", template), problem["msg"]), problem
    assert any("\u1780" <= ch <= "\u17ff" for ch in problem["msg_km"]), case
    assert problem["loc"][0] != "body"
    # The refused value is never echoed back in a field of its own.
    assert "input" not in problem


async def test_many_problems_are_reported_together_each_at_its_field(intake, body) -> None:
    sent = body(concerns=[], **_child(age_estimate=30, province_code="99"))
    response = await intake.client.post("/api/v1/referrals", json=sent, headers=OFFICER)
    assert response.status_code == 422
    codes = {p["field"]: p["code"] for p in response.json()["detail"]}
    assert codes == {
        "children.0.age_estimate": "age_out_of_range",
        "children.0.province_code": "unknown_province",
        "concerns": "no_concerns",
    }


async def test_a_body_that_is_not_json_is_refused_with_a_message(intake) -> None:
    response = await intake.client.post(
        "/api/v1/referrals",
        content=b"{not json",
        headers={**OFFICER, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["code"] == "invalid_value"


async def test_intake_accepts_no_file_attachment(intake, body) -> None:
    files = {"file": ("photo.jpg", b"\xff\xd8\xff\xe0 not really an image", "image/jpeg")}
    response = await intake.client.post(
        "/api/v1/referrals", data={"referral": "{}"}, files=files, headers=OFFICER
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["detail"]
    # Nor does the officers' form take one.
    page = await intake.client.post(
        "/ui/referrals",
        files=files,
        headers={"Cookie": f"cpu_session={OFFICER['Authorization'][7:]}"},
    )
    assert page.status_code == 415
    assert "no files" in page.text


async def test_unknown_and_malformed_ids(intake) -> None:
    missing = uuid.uuid4()
    for method, path, payload in (
        ("GET", f"/api/v1/referrals/{missing}", None),
        ("GET", f"/api/v1/referrals/{missing}/matches", None),
        (
            "POST",
            f"/api/v1/referrals/{missing}/match-decision",
            {"decision": "new_child", "referral_id": str(uuid.uuid4())},
        ),
        ("POST", f"/api/v1/referrals/{missing}/withdrawal", {"reason_code": "made_in_error"}),
    ):
        response = await intake.client.request(method, path, json=payload, headers=OFFICER)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "referral_not_found"
        assert response.json()["detail"] == MESSAGES["referral_not_found"].en
    bad = await intake.client.get("/api/v1/referrals/not-a-uuid", headers=OFFICER)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "path.referral_id"


async def test_the_record_rule(intake, body) -> None:
    created = await intake.submit(body(concerns=["homicide"]))  # teams HIT and OVCS
    path = f"/api/v1/referrals/{created['id']}"
    allowed = [
        bearer("supervisor"),
        bearer("investigator", teams=["HIT"]),
        bearer("victim_support", teams=["OVCS"], provinces=["12"]),
        bearer("intake_officer", provinces=["12"]),
    ]
    hidden = [
        bearer("investigator"),  # no team
        bearer("icac_analyst", teams=["ICAC"]),  # not routed to ICAC
        bearer("victim_support", teams=["OVCS"], provinces=["01"]),  # other province
        bearer("intake_officer", provinces=["01"]),
    ]
    for headers in allowed:
        assert (await intake.client.get(path, headers=headers)).status_code == 200
    for headers in hidden:
        response = await intake.client.get(path, headers=headers)
        assert response.status_code == 404, response.text
    for role in ("forensic_officer", "auditor", "ops"):
        assert (await intake.client.get(path, headers=bearer(role))).status_code == 403
    assert (await intake.client.get(path)).status_code == 401
    # Refused looks at a real record are on the audit trail, as denied.
    async with intake.runtime.engine.connect() as conn:
        denied = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) FROM audit_log WHERE record_id = :id AND outcome = 'denied'"
                ),
                {"id": created["id"]},
            )
        ).scalar_one()
    assert denied == len(hidden)


async def test_list_filters_paging_and_no_personal_query_parameters(intake, body) -> None:
    day = cambodia_date(datetime.now(UTC))
    await intake.submit(body(concerns=["homicide"]))
    p1 = await intake.submit(body(immediate_danger=True, **_child(province_code="03")))
    p2 = await intake.submit(body(concerns=["trafficking"], **_child(province_code="03")))
    await intake.submit(body(**_child(province_code="04")))

    async def listing(**params: Any) -> dict[str, Any]:
        response = await intake.client.get("/api/v1/referrals", params=params, headers=OFFICER)
        assert response.status_code == 200, response.text
        return response.json()

    page = await listing(province_code="03")
    assert [i["id"] for i in page["items"]][:2] == [p1["id"], p2["id"]]  # P1 before P2
    assert all(i["province_code"] == "03" for i in page["items"])
    assert "children" not in page["items"][0] and "narrative" not in page["items"][0]
    assert (await listing(priority="P1", province_code="03"))["total"] >= 1
    assert all(i["priority"] == "P2" for i in (await listing(priority="P2"))["items"])
    hit = await listing(team="HIT")
    assert hit["total"] >= 1 and all("HIT" in i["teams"] for i in hit["items"])
    sexual = await listing(concern="homicide")
    assert sexual["total"] >= 1 and all("homicide" in i["concerns"] for i in sexual["items"])
    assert (await listing(reference=p2["reference"]))["items"][0]["id"] == p2["id"]
    newest = await listing(order="newest", limit=1)
    assert newest["limit"] == 1 and len(newest["items"]) == 1
    second = await listing(order="newest", limit=1, offset=1)
    assert second["items"][0]["id"] != newest["items"][0]["id"]
    assert (await listing(submitted_from=(day + timedelta(days=2)).isoformat()))["total"] == 0

    provincial = await intake.client.get(
        "/api/v1/referrals", headers=bearer("intake_officer", provinces=["04"])
    )
    assert {i["province_code"] for i in provincial.json()["items"]} == {"04"}

    for params in ({"name": "Sokha"}, {"phone": "012345678"}, {"priority": "P9"}):
        refused = await intake.client.get("/api/v1/referrals", params=params, headers=OFFICER)
        assert refused.status_code == 422, params
    assert (
        await intake.client.get("/api/v1/referrals", headers=bearer("investigator"))
    ).status_code == 403


async def _outbox(intake, aggregate: str | None = None) -> list[dict[str, Any]]:
    import json

    async with intake.runtime.engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT payload FROM outbox ORDER BY id"))).all()
    events = [json.loads(bytes(r.payload)) for r in rows]
    return [e for e in events if aggregate is None or e["aggregate_id"] == aggregate]


async def _pseudonym(intake, referral_id: str) -> str:
    async with intake.runtime.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT pseudonym FROM referral WHERE id = :id"),
                {"id": uuid.UUID(referral_id)},
            )
        ).scalar_one()


async def test_events_are_in_the_outbox_with_pseudonyms_and_no_personal_data(intake, body) -> None:
    sent = body()
    created = await intake.submit(sent)
    pseudonym = await _pseudonym(intake, created["id"])
    events = await _outbox(intake, pseudonym)
    assert [e["event_type"] for e in events] == ["referral.submitted", "referral.triaged"]
    assert [e["aggregate_version"] for e in events] == [1, 2]
    triaged = events[1]["data"]
    assert triaged["referral_id"] == pseudonym and pseudonym.startswith("ps_")
    assert triaged["priority"] == "P3" and triaged["same_child_as_referral_id"] is None
    assert triaged["children"][0]["child_id"].startswith("ps_")
    assert created["id"] not in str(events)
    text = str(events)
    child = sent["children"][0]
    for value in (
        child["given_name"],
        child["family_name"],
        child["name_km"],
        child["village"],
        "2016-05-04",
        sent["reporter"]["name"],
        "85512345678",
        sent["narrative"],
        sent["alleged_perpetrators"][0]["name"],
    ):
        assert value not in text


def _same_child(sent: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The same child reported again, by someone else, with a typo in the family name."""
    child = dict(sent["children"][0])
    child["family_name"] = child["family_name"][:-1] + (
        "x" if child["family_name"][-1] != "x" else "y"
    )
    child.update(changes)
    return child


async def test_matches_best_first_on_digests_and_the_decisions(intake, body, names) -> None:
    first = body()
    earlier = await intake.submit(first)
    # A weaker candidate: same Khmer name, date of birth and village, other Latin names.
    other = {**first["children"][0], "given_name": names.latin(), "family_name": names.latin()}
    weaker = await intake.submit(body(children=[other]))
    later = await intake.submit(
        body(reporter={"anonymous": True}, children=[_same_child(first)], concerns=["neglect"])
    )
    assert later["possible_matches"] >= 1
    assert later["match_decision_pending"] is True  # P3: casework waits for the decision

    response = await intake.client.get(f"/api/v1/referrals/{later['id']}/matches", headers=OFFICER)
    assert response.status_code == 200, response.text
    matches = response.json()["matches"]
    assert [m["referral_id"] for m in matches] == [earlier["id"], weaker["id"]]
    assert matches[0]["reference"] == earlier["reference"]
    assert 0.5 <= matches[0]["score"] <= 1
    assert {"name_km", "dob_exact", "village"} <= set(matches[0]["reasons"])
    assert [m["score"] for m in matches] == sorted((m["score"] for m in matches), reverse=True)
    assert set(matches[0]) == {"referral_id", "reference", "score", "reasons"}
    # Matches look only at earlier referrals.
    back = await intake.client.get(f"/api/v1/referrals/{earlier['id']}/matches", headers=OFFICER)
    assert later["id"] not in {m["referral_id"] for m in back.json()["matches"]}

    decide = f"/api/v1/referrals/{later['id']}/match-decision"
    refused = await intake.client.post(
        decide, json={"decision": "same_child", "referral_id": later["id"]}, headers=OFFICER
    )
    assert refused.status_code == 409 and refused.json()["code"] == "match_self"
    stranger = await intake.client.post(
        decide, json={"decision": "same_child", "referral_id": str(uuid.uuid4())}, headers=OFFICER
    )
    assert stranger.status_code == 409 and stranger.json()["code"] == "match_not_a_candidate"
    bad = await intake.client.post(
        decide, json={"decision": "maybe", "referral_id": earlier["id"]}, headers=OFFICER
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["code"] == "invalid_choice"
    supervisor = await intake.client.post(
        decide,
        json={"decision": "same_child", "referral_id": earlier["id"]},
        headers=bearer("supervisor"),
    )
    assert supervisor.status_code == 403

    pseudonym = await _pseudonym(intake, later["id"])
    assert [e["event_type"] for e in await _outbox(intake, pseudonym)] == ["referral.submitted"]
    decided = await intake.client.post(
        decide, json={"decision": "same_child", "referral_id": earlier["id"]}, headers=OFFICER
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "linked"
    assert decided.json()["same_child_as_referral_id"] == earlier["id"]
    events = await _outbox(intake, pseudonym)
    assert [e["event_type"] for e in events] == ["referral.submitted", "referral.triaged"]
    assert events[1]["data"]["same_child_as_referral_id"] == await _pseudonym(intake, earlier["id"])

    again = await intake.client.post(
        decide, json={"decision": "new_child", "referral_id": weaker["id"]}, headers=OFFICER
    )
    assert again.status_code == 409 and again.json()["code"] == "match_decision_not_open"
    assert any("\u1780" <= ch <= "\u17ff" for ch in again.json()["detail_km"])
    got = (await intake.client.get(f"/api/v1/referrals/{later['id']}", headers=OFFICER)).json()
    assert got["match_decisions"][0]["decision"] == "same_child"
    assert got["match_decisions"][0]["decided_by"] == "officer.dara"
    assert got["match_decisions"][0]["score"] == matches[0]["score"]


async def test_new_child_on_every_candidate_releases_the_triaged_event(intake, body) -> None:
    first = body()
    earlier = await intake.submit(first)
    later = await intake.submit(body(children=[_same_child(first)]))
    assert later["match_decision_pending"] is True
    pseudonym = await _pseudonym(intake, later["id"])
    matches = (
        await intake.client.get(f"/api/v1/referrals/{later['id']}/matches", headers=OFFICER)
    ).json()["matches"]
    assert [m["referral_id"] for m in matches] == [earlier["id"]]
    response = await intake.client.post(
        f"/api/v1/referrals/{later['id']}/match-decision",
        json={"decision": "new_child", "referral_id": earlier["id"]},
        headers=OFFICER,
    )
    assert response.status_code == 200, response.text
    assert response.json() | {} == {
        "referral_id": later["id"],
        "candidate_referral_id": earlier["id"],
        "decision": "new_child",
        "status": "triaged",
        "match_decision_pending": False,
        "same_child_as_referral_id": None,
    }
    events = await _outbox(intake, pseudonym)
    assert [e["event_type"] for e in events] == ["referral.submitted", "referral.triaged"]
    assert events[1]["data"]["same_child_as_referral_id"] is None
    twice = await intake.client.post(
        f"/api/v1/referrals/{later['id']}/match-decision",
        json={"decision": "same_child", "referral_id": earlier["id"]},
        headers=OFFICER,
    )
    assert twice.status_code == 409 and twice.json()["code"] == "match_already_decided"


async def test_a_p1_referral_is_never_held_and_a_later_link_republishes(intake, body) -> None:
    first = body()
    earlier = await intake.submit(first)
    urgent = await intake.submit(body(immediate_danger=True, children=[_same_child(first)]))
    assert urgent["priority"] == "P1" and urgent["possible_matches"] >= 1
    assert urgent["match_decision_pending"] is False
    pseudonym = await _pseudonym(intake, urgent["id"])
    assert [e["event_type"] for e in await _outbox(intake, pseudonym)] == [
        "referral.submitted",
        "referral.triaged",
    ]
    response = await intake.client.post(
        f"/api/v1/referrals/{urgent['id']}/match-decision",
        json={"decision": "same_child", "referral_id": earlier["id"]},
        headers=OFFICER,
    )
    assert response.status_code == 200, response.text
    events = await _outbox(intake, pseudonym)
    assert [e["event_type"] for e in events] == [
        "referral.submitted",
        "referral.triaged",
        "referral.triaged",
    ]
    assert events[2]["aggregate_version"] > events[1]["aggregate_version"]
    assert events[2]["data"]["same_child_as_referral_id"] == await _pseudonym(intake, earlier["id"])


async def test_withdrawal(intake, body) -> None:
    created = await intake.submit(body())
    path = f"/api/v1/referrals/{created['id']}/withdrawal"
    bad = await intake.client.post(path, json={"reason_code": "Made in error!"}, headers=OFFICER)
    assert bad.status_code == 422 and bad.json()["detail"][0]["code"] == "invalid_reason_code"
    assert (
        await intake.client.post(path, json={"reason_code": "x"}, headers=bearer("supervisor"))
    ).status_code == 403
    done = await intake.client.post(path, json={"reason_code": "made_in_error"}, headers=OFFICER)
    assert done.status_code == 200, done.text
    assert done.json() == {
        "id": created["id"],
        "status": "withdrawn",
        "withdrawal_reason": "made_in_error",
    }
    again = await intake.client.post(path, json={"reason_code": "made_in_error"}, headers=OFFICER)
    assert again.status_code == 409 and again.json()["code"] == "invalid_status_transition"
    events = await _outbox(intake, await _pseudonym(intake, created["id"]))
    assert events[-1]["event_type"] == "referral.withdrawn"
    assert events[-1]["data"]["reason_code"] == "made_in_error"


async def test_every_read_and_write_is_audited(intake, body) -> None:
    officer = bearer("intake_officer", user="officer.audit")
    created = await intake.submit(body(), "intake_officer", user="officer.audit")
    rid = created["id"]
    await intake.client.get(f"/api/v1/referrals/{rid}", headers=officer)
    await intake.client.get(f"/api/v1/referrals/{rid}/matches", headers=officer)
    await intake.client.get("/api/v1/referrals", headers=officer)
    await intake.client.post(
        f"/api/v1/referrals/{rid}/withdrawal",
        json={"reason_code": "duplicate_call"},
        headers=officer,
    )
    response = await intake.client.get(
        "/api/v1/audit", params={"user": "officer.audit"}, headers=bearer("auditor")
    )
    assert response.status_code == 200
    entries = response.json()["entries"]
    actions = [(e["action"], e["record_id"]) for e in reversed(entries)]
    assert actions == [
        ("referral.create", rid),
        ("referral.read", rid),
        ("referral.matches.read", rid),
        ("referral.list", None),
        ("referral.withdraw", rid),
    ]
    assert all(e["record_type"] == "referral" and e["outcome"] == "allowed" for e in entries)
    assert all(e["roles"] == ["intake_officer"] for e in entries)


async def test_withdrawing_the_only_candidate_releases_a_held_referral(intake, body) -> None:
    first = body()
    earlier = await intake.submit(first)
    later = await intake.submit(body(children=[_same_child(first)]))
    assert later["match_decision_pending"] is True
    pseudonym = await _pseudonym(intake, later["id"])
    assert [e["event_type"] for e in await _outbox(intake, pseudonym)] == ["referral.submitted"]
    response = await intake.client.post(
        f"/api/v1/referrals/{earlier['id']}/withdrawal",
        json={"reason_code": "made_in_error"},
        headers=OFFICER,
    )
    assert response.status_code == 200, response.text
    events = await _outbox(intake, pseudonym)
    assert [e["event_type"] for e in events] == ["referral.submitted", "referral.triaged"]
    assert events[1]["data"]["same_child_as_referral_id"] is None
    got = (await intake.client.get(f"/api/v1/referrals/{later['id']}", headers=OFFICER)).json()
    assert got["match_decision_pending"] is False
    matches = await intake.client.get(f"/api/v1/referrals/{later['id']}/matches", headers=OFFICER)
    assert matches.json() == {"matches": []}


async def test_a_case_opened_in_casework_is_recorded_and_stops_withdrawal(
    intake, body, kafka_bootstrap_servers
) -> None:
    created = await intake.submit(body())
    pseudonym = await _pseudonym(intake, created["id"])
    case_id = "ps_" + "".join(random.choice(string.ascii_lowercase) for _ in range(26))
    opened = CaseOpened(
        case_id=case_id,
        origin="referral",
        origin_id=pseudonym,
        opened_at=datetime.now(UTC),
        priority="P3",
        province_code="12",
    )
    envelope = new_envelope(
        opened, source="casework", aggregate_id=case_id, aggregate_version=1, correlation_id="t1"
    )
    await produce_envelopes(kafka_bootstrap_servers, "casework.case.events", [envelope])

    async def case_opened() -> bool:
        got = await intake.client.get(f"/api/v1/referrals/{created['id']}", headers=OFFICER)
        return got.json()["status"] == "case_opened"

    await wait_until(case_opened, timeout=120, what="intake to record casework's case.opened")
    refused = await intake.client.post(
        f"/api/v1/referrals/{created['id']}/withdrawal",
        json={"reason_code": "made_in_error"},
        headers=OFFICER,
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "invalid_status_transition"
