"""The casework API on PostgreSQL: record-level visibility, the 409 of an illegal transition,
suspects encrypted at rest, the investigation from opening to conviction, audit, deadlines."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from cpu_casework.domain.values import cambodian_date
from cpu_shared.contracts import EVENT_CATALOGUE, personal_fields_in
from cpu_shared.security.crypto import DecryptionError, FieldCipher, Keyring, field_context
from cpu_shared.security.rotation import rotate_store

pytestmark = pytest.mark.integration

SUSPECT = {
    "given_name": "Dara",
    "family_name": "Sokhom",
    "name_km": "សុខុម ដារា",
    "aliases": ["Uncle Tiger"],
    "phone": "+855 12 345 678",
    "address": "House 12, Street 271, Phnom Penh",
    "national_id": "010203040",
    "notes": "Drives a blue tuk-tuk near the school",
}


async def open_case(casework, *, teams=("OVCS",), province="12", **kwargs) -> str:  # type: ignore[no-untyped-def]
    _, referral = casework.referral_id()
    await casework.deliver_referral(
        casework.triaged(referral, teams=teams, province=province, **kwargs)
    )
    return await casework.case_id_of(referral)


async def test_a_case_is_visible_to_its_teams_and_supervisors_only(casework) -> None:
    ovcs_case = await open_case(casework, teams=["OVCS"], province="12")
    hit_case = await open_case(
        casework,
        teams=["HIT", "OVCS"],
        province="03",
        concerns=["homicide"],
        children=[(casework.child_id(), 8)],
    )
    client = casework.client
    ovcs_12 = casework.token("investigator", user="inv-ovcs", teams=["OVCS"], provinces=["12"])
    hit = casework.token("investigator", user="inv-hit", teams=["HIT"])
    fst = casework.token("investigator", user="inv-fst", teams=["FST"])
    support_03 = casework.token("victim_support", user="vs-1", teams=["OVCS"], provinces=["03"])
    supervisor = casework.token("supervisor", user="sup-1")

    def ids(response):  # type: ignore[no-untyped-def]
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert ids(await client.get("/api/v1/cases", headers=ovcs_12)) == {ovcs_case}
    assert ids(await client.get("/api/v1/cases", headers=hit)) == {hit_case}
    assert ids(await client.get("/api/v1/cases", headers=fst)) == set()
    assert ids(await client.get("/api/v1/cases", headers=support_03)) == {hit_case}
    assert ids(await client.get("/api/v1/cases", headers=supervisor)) == {ovcs_case, hit_case}
    # No teams claim at all: nothing.
    no_team = casework.token("investigator", user="inv-none")
    assert ids(await client.get("/api/v1/cases", headers=no_team)) == set()

    # A case one may not see is answered exactly like a case that does not exist.
    hidden = await client.get(f"/api/v1/cases/{hit_case}", headers=ovcs_12)
    missing = await client.get(
        "/api/v1/cases/00000000-0000-4000-8000-000000000000", headers=ovcs_12
    )
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    refused = await client.post(
        f"/api/v1/cases/{hit_case}/transitions",
        json={"to_status": "under_investigation", "reason_code": "investigation_started"},
        headers=fst,
    )
    assert refused.status_code == 404
    assert (await client.get(f"/api/v1/cases/{hit_case}", headers=hit)).status_code == 200

    # Roles without casework actions never see a case, whatever their teams.
    for role in ("auditor", "ops", "intake_officer", "forensic_officer", "icac_analyst"):
        token = casework.token(role, teams=["OVCS", "HIT"])
        assert (await client.get("/api/v1/cases", headers=token)).status_code == 403
        assert (await client.get(f"/api/v1/cases/{ovcs_case}", headers=token)).status_code == 403

    # The auditor finds every look at the hidden case, allowed and refused.
    audit = await client.get(
        "/api/v1/audit",
        params={"record_type": "case", "record_id": hit_case},
        headers=casework.token("auditor"),
    )
    trail = {(e["user"], e["action"], e["outcome"]) for e in audit.json()["entries"]}
    assert ("inv-ovcs", "case.read", "denied") in trail
    assert ("inv-fst", "case.transition", "denied") in trail
    assert ("inv-hit", "case.read", "allowed") in trail
    assert ("inv-hit", "case.list", "allowed") in trail


async def test_an_illegal_transition_is_409_with_the_allowed_ones(casework) -> None:
    case_id = await open_case(casework)
    response = await casework.client.post(
        f"/api/v1/cases/{case_id}/transitions",
        json={"to_status": "charged", "reason_code": "charged_by_prosecutor"},
        headers=casework.token("investigator", teams=["OVCS"]),
    )
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail["current"] == "open"
    assert detail["requested"] == "charged"
    assert detail["allowed"] == ["under_investigation", "closed_unfounded", "closed_transferred"]
    assert "open" in detail["message"] and detail["rule"] == "illegal_transition"
    # Nothing was published for it.
    assert [e.event_type for e in await casework.outbox()] == ["case.opened", "case.assigned"]


async def test_reopening_is_for_supervisors(casework) -> None:
    case_id = await open_case(casework)
    investigator = casework.token("investigator", teams=["OVCS"])
    closed = await casework.client.post(
        f"/api/v1/cases/{case_id}/transitions",
        json={
            "to_status": "closed_unfounded",
            "reason_code": "no_offence_found",
            "reason_text": "The doctor found an accidental injury.",
        },
        headers=investigator,
    )
    assert closed.status_code == 201, closed.text
    body = {"to_status": "reopened", "reason_code": "new_evidence", "reason_text": "New witness."}
    refused = await casework.client.post(
        f"/api/v1/cases/{case_id}/transitions", json=body, headers=investigator
    )
    assert refused.status_code == 403 and "case.reopen" in refused.json()["detail"]
    reopened = await casework.client.post(
        f"/api/v1/cases/{case_id}/transitions", json=body, headers=casework.token("supervisor")
    )
    assert reopened.status_code == 201 and reopened.json()["status"] == "reopened"


async def test_suspect_details_are_encrypted_at_rest_and_shown_to_investigators_only(
    casework,
) -> None:
    case_id = await open_case(casework)
    investigator = casework.token("investigator", user="inv-1", teams=["OVCS"])
    created = await casework.client.post(
        f"/api/v1/cases/{case_id}/suspects", json={"details": SUSPECT}, headers=investigator
    )
    assert created.status_code == 201, created.text
    suspect_id = created.json()["suspect_id"]
    shown = created.json()["case"]["suspects"][0]["details"]
    assert shown["given_name"] == "Dara" and shown["name_km"] == "សុខុម ដារា"

    # At rest: one opaque token, none of the values.
    stored = await casework.scalar(
        "SELECT details_enc FROM case_suspects WHERE id = :id", id=suspect_id
    )
    assert stored.startswith("enc1.")
    dump = json.dumps(
        [list(map(str, r)) for r in await casework.rows("SELECT * FROM case_suspects")],
        ensure_ascii=False,
    )
    for value in ("Dara", "Sokhom", "សុខុម", "Tiger", "345 678", "Street 271", "010203040", "tuk"):
        assert value not in dump
    # Bound to its row: the same token under another suspect's id does not decrypt.
    cipher = casework.cw.cipher
    with pytest.raises(DecryptionError):
        cipher.decrypt(stored, context=field_context("case_suspects", "details_enc", "other-id"))

    # A victim-support officer of the team sees that there is a suspect, not who.
    support = casework.token("victim_support", user="vs-1", teams=["OVCS"])
    seen = await casework.client.get(f"/api/v1/cases/{case_id}", headers=support)
    assert seen.status_code == 200
    assert seen.json()["suspects"] == [{**seen.json()["suspects"][0], "details": None}]
    assert "Dara" not in seen.text
    # Each disclosure of the details is on the audit trail.
    audit = await casework.client.get(
        "/api/v1/audit",
        params={"record_type": "suspect", "record_id": suspect_id},
        headers=casework.token("auditor"),
    )
    assert {(e["user"], e["action"]) for e in audit.json()["entries"]} == {
        ("inv-1", "suspect.read")
    }


async def test_an_investigation_from_opening_to_conviction(casework) -> None:
    case_id = await open_case(casework, province="12", children=[(casework.child_id(), 13)])
    client = casework.client
    inv = casework.token("investigator", user="inv-1", teams=["OVCS"], provinces=["12"])
    supervisor = casework.token("supervisor", user="sup-1")
    today = cambodian_date(casework.clock()).isoformat()

    async def post(path, body, headers=inv, expected=201):  # type: ignore[no-untyped-def]
        response = await client.post(f"/api/v1/cases/{case_id}/{path}", json=body, headers=headers)
        assert response.status_code == expected, (path, response.text)
        return response.json()

    async def move(status, code):  # type: ignore[no-untyped-def]
        return await post("transitions", {"to_status": status, "reason_code": code})

    # A supervisor names the investigator: a reassignment, so it needs a reason code.
    no_reason = await post(
        "assignments",
        {"team": "OVCS", "investigator_id": "inv-1", "investigator_province_code": "12"},
        headers=supervisor,
        expected=422,
    )
    assert no_reason["detail"][0]["type"] == "reassignment_reason_required"
    await post(
        "assignments",
        {
            "team": "OVCS",
            "investigator_id": "inv-1",
            "investigator_province_code": "12",
            "reason_code": "investigator_assigned",
        },
        headers=supervisor,
    )
    await move("under_investigation", "investigation_started")
    suspect_id = (await post("suspects", {"details": SUSPECT}))["suspect_id"]
    await move("suspect_identified", "suspect_located")
    await post("arrests", {"suspect_id": suspect_id, "arrested_on": today})
    await post("arrests", {"suspect_id": suspect_id, "arrested_on": today}, expected=200)
    await move("arrest_made", "arrest_executed")
    unknown = await post(
        "charges",
        {"suspect_id": suspect_id, "offence_codes": ["CC-2009-art-9999"], "charged_on": today},
        expected=422,
    )
    assert unknown["detail"][0]["type"] == "unknown_offence"
    await post(
        "charges",
        {"suspect_id": suspect_id, "offence_codes": ["CC-2009-art-239"], "charged_on": today},
    )
    await move("charged", "charged_by_prosecutor")
    await move("in_court", "sent_to_court")
    early = await post(
        "transitions",
        {"to_status": "closed_convicted", "reason_code": "court_judgment"},
        expected=409,
    )
    assert early["detail"]["requirement"] == "conviction_recorded"
    await post(
        "court-outcomes",
        {
            "suspect_id": suspect_id,
            "outcome": "convicted",
            "decided_on": today,
            "sentence": {"years": 12, "months": 6},
        },
    )
    final = await move("closed_convicted", "court_judgment")
    assert final["status"] == "closed_convicted"
    assert final["court_outcomes"][0]["sentence"] == {"years": 12, "months": 6}
    assert [(a["suspect_id"], a["arrested_on"]) for a in final["arrests"]] == [(suspect_id, today)]
    assert [c["offence_codes"] for c in final["charges"]] == [["CC-2009-art-239"]]
    assert final["court_outcomes"][0]["outcome"] == "convicted"
    assert [t["to_status"] for t in final["transitions"]][-1] == "closed_convicted"
    kinds = [entry["kind"] for entry in final["timeline"]]
    assert kinds[0] == "opened" and kinds.count("status_changed") == 6

    events = await casework.outbox()
    assert [e.event_type for e in events] == [
        "case.opened",
        "case.assigned",
        "case.assigned",
        "case.status_changed",
        "case.status_changed",
        "case.suspect_arrested",
        "case.status_changed",
        "case.charged",
        "case.status_changed",
        "case.status_changed",
        "case.court_outcome_recorded",
        "case.status_changed",
        "case.closed",
    ]
    versions = [e.aggregate_version for e in events]
    assert versions == list(range(1, len(events) + 1))
    suspect_ps = casework.cw.suspect_pseudonym(suspect_id)
    by_type = {e.event_type: e.data for e in events}
    assert by_type["case.court_outcome_recorded"]["sentence_months"] == 150
    assert by_type["case.court_outcome_recorded"]["suspect_id"] == suspect_ps
    assert by_type["case.charged"]["offence_codes"] == ["CC-2009-art-239"]
    assert events[2].data["investigator_id"] == casework.cw.officer_pseudonym("inv-1")
    raw = json.dumps([e.model_dump(mode="json") for e in events], ensure_ascii=False)
    for value in ("Dara", "Sokhom", "inv-1", "sup-1", suspect_id, case_id):
        assert value not in raw
    for envelope in events:
        model = EVENT_CATALOGUE[(envelope.event_type, envelope.event_version)]
        assert not list(personal_fields_in(model))


async def test_victim_services_are_for_victim_support_and_reach_reporting_as_codes(
    casework,
) -> None:
    child = casework.child_id()
    case_id = await open_case(casework, children=[(child, 7)])
    body = {
        "child_id": child,
        "service": "partner_referral",
        "provider_code": "dosvy:12",
        "provided_on": cambodian_date(casework.clock()).isoformat(),
    }
    path = f"/api/v1/cases/{case_id}/victim-services"
    investigator = casework.token("investigator", teams=["OVCS"])
    assert (await casework.client.post(path, json=body, headers=investigator)).status_code == 403
    support = casework.token("victim_support", teams=["OVCS"])
    assert (await casework.client.post(path, json=body, headers=support)).status_code == 201
    assert (await casework.client.post(path, json=body, headers=support)).status_code == 200
    wrong = {**body, "provider_code": "hospital_calmette"}
    refused = await casework.client.post(path, json=wrong, headers=support)
    assert refused.status_code == 422
    provided = [
        e for e in await casework.outbox() if e.event_type == "case.victim_service_provided"
    ]
    assert len(provided) == 1
    assert provided[0].data["child_id"] == child
    assert provided[0].data["provider_code"] == "dosvy:12"


async def test_overdue_first_contacts_are_listed_per_team_and_counted(casework) -> None:
    child = casework.child_id()
    case_id = await open_case(casework, children=[(child, 4)], priority="P1", teams=["OVCS"])
    hit_case = await open_case(
        casework,
        teams=["HIT"],
        priority="P1",
        concerns=["homicide"],
        children=[(casework.child_id(), 3)],
    )
    ovcs = casework.token("victim_support", teams=["OVCS"])
    report = (await casework.client.get("/api/v1/first-contact/overdue", headers=ovcs)).json()
    assert report["teams"] == []

    casework.clock.advance(hours=25)
    report = (await casework.client.get("/api/v1/first-contact/overdue", headers=ovcs)).json()
    assert [(t["team"], [x["case_id"] for x in t["tasks"]]) for t in report["teams"]] == [
        ("OVCS", [case_id])
    ]
    everything = await casework.client.get(
        "/api/v1/first-contact/overdue", headers=casework.token("supervisor")
    )
    assert {t["team"] for t in everything.json()["teams"]} == {"OVCS", "HIT"}
    from cpu_casework.service_layer.commands import refresh_overdue_metric

    counts = await refresh_overdue_metric(casework.runtime.sessions, casework.cw)
    assert counts == {"OVCS": 1, "HIT": 1}
    metrics = casework.runtime.registry.get_sample_value(
        "cpu_casework_overdue_first_contact", {"team": "HIT", "priority": "P1"}
    )
    assert metrics == 1

    # Recording the contact closes the task.
    contacted = await casework.client.post(
        f"/api/v1/cases/{case_id}/first-contact",
        json={
            "child_id": child,
            "contacted_at": (casework.clock() - timedelta(hours=1)).isoformat(),
        },
        headers=ovcs,
    )
    assert contacted.status_code == 201, contacted.text
    assert contacted.json()["children"][0]["first_contact"]["met_target"] is False
    [recorded] = [
        e for e in await casework.outbox() if e.event_type == "case.first_contact_recorded"
    ]
    assert recorded.data["child_id"] == child
    counts = await refresh_overdue_metric(casework.runtime.sessions, casework.cw)
    assert counts == {"HIT": 1}
    assert hit_case


async def test_the_referral_filter_takes_intakes_referral_id(casework) -> None:
    internal, referral = casework.referral_id()
    await casework.deliver_referral(casework.triaged(referral, province="05"))
    await open_case(casework)
    supervisor = casework.token("supervisor")
    for key in (internal, internal.upper(), referral):
        found = await casework.client.get(
            "/api/v1/cases", params={"referral_id": key}, headers=supervisor
        )
        assert [i["referral_ids"] for i in found.json()["items"]] == [[referral]], key
    by_province = await casework.client.get(
        "/api/v1/cases", params={"province": "05", "status": "open"}, headers=supervisor
    )
    assert by_province.json()["total"] == 1
    paged = await casework.client.get(
        "/api/v1/cases", params={"limit": 1, "offset": 1}, headers=supervisor
    )
    assert paged.json()["total"] == 2 and len(paged.json()["items"]) == 1


async def test_after_a_master_key_rotation_everything_still_reads(casework) -> None:
    case_id = await open_case(casework)
    investigator = casework.token("investigator", user="inv-1", teams=["OVCS"])
    await casework.client.post(
        f"/api/v1/cases/{case_id}/suspects", json={"details": SUSPECT}, headers=investigator
    )
    await casework.client.post(
        f"/api/v1/cases/{case_id}/transitions",
        json={
            "to_status": "closed_transferred",
            "reason_code": "transferred_to_other_unit",
            "reason_text": "Sent to the provincial police of Kampot.",
        },
        headers=investigator,
    )
    keyring = Keyring.load()  # this run's keys, as the service loaded them
    rotated = FieldCipher({**keyring.master_keys, "k2": b"n" * 32}, "k2")
    done = await rotate_store(casework.runtime.engine, rotated, batch_size=2)
    assert {(c.table, c.column) for c in done} >= {
        ("case_suspects", "details_enc"),
        ("case_transitions", "reason_text_enc"),
    }
    tokens = await casework.rows("SELECT details_enc FROM case_suspects")
    assert all(t[0].startswith("enc1.k2.") for t in tokens)
    casework.cw.__dict__["cipher"] = rotated  # the service restarted with the new key active
    seen = await casework.client.get(f"/api/v1/cases/{case_id}", headers=investigator)
    assert seen.json()["suspects"][0]["details"]["family_name"] == "Sokhom"
    assert (
        seen.json()["transitions"][0]["reason_text"] == "Sent to the provincial police of Kampot."
    )
