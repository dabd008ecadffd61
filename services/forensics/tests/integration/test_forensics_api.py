"""The forensics API on PostgreSQL: every custody and analysis invariant, breached through
HTTP, is refused with 409 naming its rule (or 422 naming the field); the two-step handover;
uploads refused; record-level visibility; audit; encryption at rest; events without personal
data; dense ledger indexes under concurrent writers; append-only triggers."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from cpu_shared.contracts import new_envelope
from cpu_shared.contracts.casework import CaseAssigned, CaseOpened

pytestmark = pytest.mark.integration

PHONE_IMAGE_SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def rule_of(response: Any) -> str:
    assert response.status_code == 409, (response.status_code, response.text)
    detail = response.json()["detail"]
    assert detail["message"]
    return str(detail["rule"])


def fields_of(response: Any) -> set[str]:
    assert response.status_code == 422, (response.status_code, response.text)
    return {".".join(str(p) for p in problem["loc"][1:]) for problem in response.json()["detail"]}


# --- the two-step handover and its rules ---------------------------------------------------------


async def test_custody_passes_only_when_the_receiver_accepts(forensics) -> None:
    item = await forensics.register()
    assert item["custodian"] == "fo.dara" and item["registered_by"] == "fo.dara"
    assert item["registration"]["ledger_index"] == 0
    forensics.clock.advance(minutes=5)
    requested = await forensics.hand_over(item["id"], "fo.dara", "fo.sokha")
    assert requested.status_code == 201, requested.text
    assert requested.json()["status"] == "pending"

    # Until accepted, the giver still holds it and the item is flagged as awaiting acceptance.
    got = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}", headers=forensics.officer("fo.dara")
    )
    assert got.json()["custodian"] == "fo.dara"
    assert got.json()["status"] == "transfer_pending"
    assert got.json()["pending_transfer"]["to_user"] == "fo.sokha"
    pending = await forensics.client.get(
        "/api/v1/custody/pending", headers=forensics.officer("fo.sokha")
    )
    assert [t["item_id"] for t in pending.json()["transfers"]] == [item["id"]]

    # Left unanswered for more than a day, it is flagged to supervisors.
    forensics.clock.advance(hours=25)
    flagged = await forensics.client.get(
        "/api/v1/custody/pending", headers=forensics.token("supervisor", user="sup.chan")
    )
    assert [t["id"] for t in flagged.json()["flagged"]] == [requested.json()["id"]]

    accepted = await forensics.accept(item["id"], requested.json()["id"], "fo.sokha")
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["item"]["custodian"] == "fo.sokha" and body["item"]["status"] == "in_custody"
    assert body["event"]["from_user"] == "fo.dara" and body["event"]["to_user"] == "fo.sokha"
    assert body["event"]["ledger_index"] == 1 and body["event"]["sequence"] == 1

    custody = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}/custody", headers=forensics.officer("fo.sokha")
    )
    steps = custody.json()["events"]
    assert [(s["kind"], s["from_user"], s["to_user"]) for s in steps] == [
        ("registered", "fo.dara", "fo.dara"),
        ("transfer", "fo.dara", "fo.sokha"),
    ]
    assert custody.json()["chain_breaks"] == []


async def test_only_the_current_custodian_hands_over(forensics) -> None:
    item = await forensics.register()
    response = await forensics.hand_over(item["id"], "fo.sokha", "fo.vanna")
    assert rule_of(response) == "not_current_custodian"


async def test_the_receiver_and_only_the_receiver_accepts_once(forensics) -> None:
    item = await forensics.register()
    transfer = (await forensics.hand_over(item["id"], "fo.dara", "fo.sokha")).json()
    assert rule_of(await forensics.accept(item["id"], transfer["id"], "fo.vanna")) == (
        "not_the_receiver"
    )
    assert rule_of(await forensics.accept(item["id"], transfer["id"], "fo.dara")) == (
        "not_the_receiver"
    )
    assert (await forensics.accept(item["id"], transfer["id"], "fo.sokha")).status_code == 200
    assert rule_of(await forensics.accept(item["id"], transfer["id"], "fo.sokha")) == (
        "transfer_not_pending"
    )


async def test_one_open_handover_at_a_time(forensics) -> None:
    item = await forensics.register()
    assert (await forensics.hand_over(item["id"], "fo.dara", "fo.sokha")).status_code == 201
    second = await forensics.hand_over(item["id"], "fo.dara", "fo.vanna")
    assert rule_of(second) == "transfer_already_pending"


async def test_nobody_hands_an_item_to_themselves(forensics) -> None:
    item = await forensics.register()
    assert rule_of(await forensics.hand_over(item["id"], "fo.dara", "fo.dara")) == "self_transfer"


async def test_nothing_moves_after_disposal(forensics) -> None:
    item = await forensics.register()
    await forensics.move(item["id"], "fo.dara", "fo.sokha", kind="destroyed")
    got = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}", headers=forensics.officer("fo.sokha")
    )
    assert got.json()["status"] == "disposed"
    assert rule_of(await forensics.hand_over(item["id"], "fo.sokha", "fo.dara")) == (
        "item_disposed"
    )
    analysis = await forensics.client.post(
        f"/api/v1/evidence/{item['id']}/analyses",
        json={"type": "dna_profile", "purpose": "Profile the stain"},
        headers=forensics.officer("fo.sokha"),
    )
    assert rule_of(analysis) == "item_disposed"
    kinds = [e.event_type for e in await forensics.outbox()]
    assert "evidence.disposed" in kinds


async def test_a_seal_change_needs_a_reason(forensics) -> None:
    item = await forensics.register()
    new_seal = await forensics.hand_over(
        item["id"], "fo.dara", "fo.sokha", seal_number="SEAL-2025-000999"
    )
    assert rule_of(new_seal) == "seal_change_needs_reason"
    worse = await forensics.hand_over(item["id"], "fo.dara", "fo.sokha", seal_condition="damaged")
    assert rule_of(worse) == "seal_change_needs_reason"
    explained = await forensics.hand_over(
        item["id"],
        "fo.dara",
        "fo.sokha",
        seal_number="SEAL-2025-000999",
        seal_change_reason="Opened at the lab for sampling, resealed",
    )
    assert explained.status_code == 201, explained.text
    # The receiver finding the seal otherwise than declared must say what they saw.
    found_broken = await forensics.accept(
        item["id"], explained.json()["id"], "fo.sokha", seal_condition="broken"
    )
    assert rule_of(found_broken) == "seal_change_needs_reason"
    noted = await forensics.accept(
        item["id"],
        explained.json()["id"],
        "fo.sokha",
        seal_condition="broken",
        receipt_note="Seal torn at the corner on arrival; photographed",
    )
    assert noted.status_code == 200, noted.text
    assert noted.json()["item"]["seal_number"] == "SEAL-2025-000999"
    assert noted.json()["item"]["seal_condition"] == "broken"


async def test_steps_cannot_be_dated_backwards_or_ahead(forensics) -> None:
    item = await forensics.register()
    before = (forensics.clock() - timedelta(hours=1)).isoformat()
    assert rule_of(await forensics.hand_over(item["id"], "fo.dara", "fo.sokha", at=before)) == (
        "time_goes_backwards"
    )
    ahead = (forensics.clock() + timedelta(hours=1)).isoformat()
    assert rule_of(await forensics.hand_over(item["id"], "fo.dara", "fo.sokha", at=ahead)) == (
        "time_in_future"
    )
    future_collection = await forensics.client.post(
        "/api/v1/evidence",
        json=forensics.item_body(collected_at=ahead),
        headers=forensics.officer("fo.dara"),
    )
    assert rule_of(future_collection) == "time_in_future"


async def test_returned_needs_a_departure(forensics) -> None:
    item = await forensics.register()
    assert rule_of(
        await forensics.hand_over(item["id"], "fo.dara", "fo.sokha", kind="returned")
    ) == ("return_without_departure")
    await forensics.move(item["id"], "fo.dara", "lab.vanna", kind="sent_to_lab")
    await forensics.move(item["id"], "lab.vanna", "fo.dara", kind="returned")


async def test_only_the_parties_cancel_a_handover(forensics) -> None:
    item = await forensics.register()
    transfer = (await forensics.hand_over(item["id"], "fo.dara", "fo.sokha")).json()
    outsider = await forensics.client.post(
        f"/api/v1/evidence/{item['id']}/transfers/{transfer['id']}/cancel",
        json={"reason": "not mine"},
        headers=forensics.officer("fo.vanna"),
    )
    assert rule_of(outsider) == "not_party_to_transfer"
    refused = await forensics.client.post(
        f"/api/v1/evidence/{item['id']}/transfers/{transfer['id']}/cancel",
        json={"reason": "Not the bag I was told about"},
        headers=forensics.officer("fo.sokha"),
    )
    assert refused.status_code == 200 and refused.json()["status"] == "refused"
    again = await forensics.accept(item["id"], transfer["id"], "fo.sokha")
    assert rule_of(again) == "transfer_not_pending"


async def test_derived_items_stay_in_their_case_and_kind(forensics) -> None:
    swab = await forensics.register(type="biological_sample", description="Buccal swab")
    other_case = await forensics.client.post(
        "/api/v1/evidence",
        json=forensics.item_body(type="dna_extract", parent_id=swab["id"]),
        headers=forensics.officer("fo.dara"),
    )
    assert rule_of(other_case) == "derived_from_other_case"
    image_of_swab = await forensics.client.post(
        "/api/v1/evidence",
        json=forensics.item_body(
            case_id=swab["case_id"],
            type="forensic_image",
            parent_id=swab["id"],
            hashes={"sha256": PHONE_IMAGE_SHA256},
            acquisition_tool="FTK Imager 4.7",
        ),
        headers=forensics.officer("fo.dara"),
    )
    assert rule_of(image_of_swab) == "derivation_not_possible"
    not_holder = await forensics.client.post(
        "/api/v1/evidence",
        json=forensics.item_body(case_id=swab["case_id"], type="dna_extract", parent_id=swab["id"]),
        headers=forensics.officer("fo.sokha"),
    )
    assert rule_of(not_holder) == "not_current_custodian"
    extract = await forensics.register(
        case_id=swab["case_id"], type="dna_extract", parent_id=swab["id"]
    )
    assert extract["parent_id"] == swab["id"]


async def test_an_item_row_that_disagrees_with_its_chain_is_never_acted_on(forensics) -> None:
    """Someone edits the custodian column to take an item they were never handed."""
    item = await forensics.register()
    await forensics.execute_as_owner(
        "UPDATE evidence_items SET custodian = 'intruder' WHERE id = :id", id=item["id"]
    )
    response = await forensics.hand_over(item["id"], "intruder", "accomplice")
    assert rule_of(response) == "custody_gap"
    # A supervisor still sees the item's history, with the disagreement spelled out.
    history = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}/custody",
        headers=forensics.token("supervisor", user="sup.chan"),
    )
    assert history.status_code == 200, history.text
    breaks = history.json()["chain_breaks"]
    assert [b["rule"] for b in breaks] == ["custody_gap"]
    assert "intruder" in breaks[0]["message"] and "fo.dara" in breaks[0]["message"]
    # A stored text that no longer decrypts is refused loudly, never shown garbled.
    await forensics.execute_as_owner(
        "UPDATE evidence_items SET description_enc = 'enc1.x.y.z.w', custodian = 'fo.dara' "
        "WHERE id = :id",
        id=item["id"],
    )
    unreadable = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}", headers=forensics.officer("fo.dara")
    )
    assert unreadable.status_code == 500
    assert "cpu ledger verify" in unreadable.json()["detail"]


# --- invalid values: 422 naming the field ---------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"type": "phone"}, "type"),
        ({"collected_at": "2025-03-01T08:00:00"}, "collected_at"),  # no time zone
        ({"description": "   "}, "description"),
        ({"description": "x" * 2001}, "description"),
        (
            {
                "type": "forensic_image",
                "hashes": {"sha256": "not-a-hash"},
                "acquisition_tool": "FTK Imager 4.7",
            },
            "hashes.sha256",
        ),
        ({"type": "forensic_image"}, "hashes"),  # an image without its SHA-256
        ({"type": "digital_device", "hashes": {"sha256": PHONE_IMAGE_SHA256}}, "acquisition_tool"),
        ({"type": "clothing", "hashes": {"sha256": PHONE_IMAGE_SHA256}}, "hashes"),
        ({"content": "aGVsbG8="}, "content"),  # no field can carry a file
        ({"parent_id": str(uuid.uuid4())}, "parent_id"),
    ],
)
async def test_invalid_items_are_422_naming_the_field(forensics, overrides, field) -> None:
    response = await forensics.client.post(
        "/api/v1/evidence",
        json=forensics.item_body(**overrides),
        headers=forensics.officer("fo.dara"),
    )
    assert field in fields_of(response)
    assert "aGVsbG8=" not in response.text  # refused values are not echoed


async def test_invalid_transfers_are_422(forensics) -> None:
    item = await forensics.register()
    registered = await forensics.hand_over(item["id"], "fo.dara", "fo.sokha", kind="registered")
    assert "kind" in fields_of(registered)
    naive = await forensics.hand_over(item["id"], "fo.dara", "fo.sokha", at="2025-03-01T08:00:00")
    assert "at" in fields_of(naive)
    bad_user = await forensics.hand_over(item["id"], "fo.dara", "fo sokha")
    assert "to_user" in fields_of(bad_user)


async def test_no_file_is_ever_accepted(forensics) -> None:
    upload = await forensics.client.post(
        "/api/v1/evidence",
        files={"file": ("phone.img", b"\x00" * 1024, "application/octet-stream")},
        headers=forensics.officer("fo.dara"),
    )
    assert upload.status_code == 415
    huge = await forensics.client.post(
        "/api/v1/evidence",
        content=json.dumps(forensics.item_body(description="A" * 100_000)),
        headers={**forensics.officer("fo.dara"), "Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    assert await forensics.scalar("SELECT count(*) FROM evidence_items") == 0


# --- lab analyses ---------------------------------------------------------------------------------


async def test_an_analysis_from_request_to_sign_off(forensics) -> None:
    item = await forensics.register(type="blood", description="Blood swab from the door frame")
    base = f"/api/v1/evidence/{item['id']}/analyses"
    officer = forensics.officer
    not_applicable = await forensics.client.post(
        base,
        json={"type": "digital_extraction", "purpose": "Extract"},
        headers=officer("fo.dara"),
    )
    assert rule_of(not_applicable) == "analysis_not_applicable"
    created = await forensics.client.post(
        base,
        json={"type": "dna_profile", "purpose": "Profile the stain"},
        headers=officer("fo.dara"),
    )
    assert created.status_code == 201, created.text
    analysis = f"{base}/{created.json()['id']}"

    examination, decision = f"{analysis}/examination", f"{analysis}/decision"
    supervisor = forensics.token("supervisor", user="sup.chan")
    early = await forensics.client.post(
        examination,
        json={"step": "result", "method": "GlobalFiler", "result_code": "full_profile"},
        headers=officer("lab.vanna"),
    )
    assert rule_of(early) == "analysis_wrong_state"
    no_analyst = await forensics.client.post(
        decision, json={"decision": "assign"}, headers=supervisor
    )
    assert "analyst" in fields_of(no_analyst)
    assigned = await forensics.client.post(
        decision, json={"decision": "assign", "analyst": "lab.vanna"}, headers=supervisor
    )
    assert assigned.status_code == 200, assigned.text
    start = {"step": "start"}
    not_analyst = await forensics.client.post(examination, json=start, headers=officer("fo.sokha"))
    assert rule_of(not_analyst) == "not_the_analyst"
    not_holding = await forensics.client.post(examination, json=start, headers=officer("lab.vanna"))
    assert rule_of(not_holding) == "analyst_not_custodian"

    await forensics.move(item["id"], "fo.dara", "lab.vanna", kind="sent_to_lab")
    forensics.clock.advance(minutes=1)
    started = await forensics.client.post(examination, json=start, headers=officer("lab.vanna"))
    assert started.status_code == 200, started.text
    unknown = await forensics.client.post(
        examination,
        json={
            "step": "result",
            "method": "GlobalFiler PCR, 3500xL",
            "result_code": "suspect_is_guilty",
        },
        headers=officer("lab.vanna"),
    )
    assert rule_of(unknown) == "unknown_result_code"
    forensics.clock.advance(minutes=1)
    reported = await forensics.client.post(
        examination,
        json={
            "step": "result",
            "method": "GlobalFiler PCR, 3500xL CE",
            "result_code": "full_profile",
            "summary": "Single-source male profile; matches reference sample R-2",
        },
        headers=officer("lab.vanna"),
    )
    assert reported.status_code == 200, reported.text
    own = await forensics.client.post(
        decision, json={"decision": "sign_off"}, headers=officer("lab.vanna")
    )
    assert rule_of(own) == "signer_is_analyst"
    silent = await forensics.client.post(
        decision, json={"decision": "send_back"}, headers=supervisor
    )
    assert "note" in fields_of(silent)
    forensics.clock.advance(minutes=1)
    signed = await forensics.client.post(
        decision, json={"decision": "sign_off"}, headers=supervisor
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["status"] == "signed_off"
    listed = await forensics.client.get(base, headers=officer("lab.vanna"))
    assert [a["status"] for a in listed.json()["analyses"]] == ["signed_off"]

    completed = [
        e for e in await forensics.outbox() if e.event_type == "evidence.analysis_completed"
    ]
    assert len(completed) == 1
    data = completed[0].data
    assert data["result_code"] == "full_profile" and data["analysis_type"] == "dna_profile"
    assert "reference sample" not in json.dumps(data) and "GlobalFiler" not in json.dumps(data)


# --- who sees what, and the audit trail --------------------------------------------------------


async def test_evidence_is_visible_to_its_case_teams_holders_and_supervisors(forensics) -> None:
    item = await forensics.register()
    path = f"/api/v1/evidence/{item['id']}"
    hit = forensics.token("investigator", user="inv.hit", teams=["HIT"])
    ovcs = forensics.token("investigator", user="inv.ovcs", teams=["OVCS"])
    assert (await forensics.client.get(path, headers=hit)).status_code == 404
    assert (
        await forensics.client.get(path, headers=forensics.token("supervisor", user="s"))
    ).status_code == 200
    # An officer of another team, not holding it: as if it did not exist.
    assert (
        await forensics.client.get(path, headers=forensics.token("forensic_officer", user="x"))
    ).status_code == 404

    case = forensics.fx.case_pseudonym(item["case_id"])
    opened = CaseOpened(
        case_id=case,
        origin="referral",
        origin_id=forensics.fx.pseudonyms.pseudonym("referral", "r-1"),
        opened_at=forensics.clock(),
        priority="P1",
        province_code="12",
        teams=["HIT"],
    )
    await forensics.deliver_case_events(forensics.envelope(opened, case, source="casework"))
    assert (await forensics.client.get(path, headers=hit)).status_code == 200
    assert (await forensics.client.get(path, headers=ovcs)).status_code == 404
    other_province = forensics.token(
        "investigator", user="inv.hit2", teams=["HIT"], provinces=["03"]
    )
    assert (await forensics.client.get(path, headers=other_province)).status_code == 404

    reassigned = CaseAssigned(
        case_id=case,
        team="OVCS",
        province_code="12",
        reassignment=True,
        assigned_at=forensics.clock(),
    )
    await forensics.deliver_case_events(forensics.envelope(reassigned, case, source="casework"))
    assert (await forensics.client.get(path, headers=ovcs)).status_code == 200
    assert (await forensics.client.get(path, headers=hit)).status_code == 404
    # An older event replayed late changes nothing.
    stale = new_envelope(
        opened, source="casework", aggregate_id=case, aggregate_version=1, correlation_id="c"
    )
    await forensics.deliver_case_events(stale)
    assert (await forensics.client.get(path, headers=hit)).status_code == 404


async def test_every_read_and_write_of_evidence_is_audited(forensics) -> None:
    item = await forensics.register()
    await forensics.client.get(
        f"/api/v1/evidence/{item['id']}", headers=forensics.officer("fo.dara")
    )
    await forensics.hand_over(item["id"], "fo.sokha", "fo.vanna")  # refused: not the holder
    await forensics.client.get(
        f"/api/v1/evidence/{item['id']}", headers=forensics.token("investigator", user="nosy")
    )
    rows = await forensics.rows(
        "SELECT user_id, action, outcome FROM audit_log WHERE record_id = :id ORDER BY id",
        id=item["id"],
    )
    assert [tuple(r) for r in rows] == [
        ("fo.dara", "evidence.register", "allowed"),
        ("fo.dara", "evidence.read", "allowed"),
        ("fo.sokha", "custody.transfer", "denied"),
        ("nosy", "evidence.read", "denied"),
    ]
    audit = await forensics.client.get(
        f"/api/v1/audit?record_type=evidence_item&record_id={item['id']}",
        headers=forensics.token("auditor", user="aud.1"),
    )
    assert audit.status_code == 200 and len(audit.json()["entries"]) == 4


# --- privacy -------------------------------------------------------------------------------------


async def test_personal_text_is_encrypted_at_rest_and_absent_from_events(forensics) -> None:
    secrets = {
        "description": "Pink dress of the girl Sokha Meas, torn at the hem",
        "collected_by": "Dr. Chea Sophal, Calmette Hospital",
        "collected_location": "House 12, Street 271, Toul Kork",
        "storage_location": "FST store, locker 7",
    }
    item = await forensics.register(**secrets)
    await forensics.move(
        item["id"],
        "fo.dara",
        "fo.sokha",
        purpose="Show the dress to the mother for identification",
        location="Village chief's office, Phum Prek",
    )
    dump = []
    for table in (
        "evidence_items",
        "evidence_custody_events",
        "evidence_custody_transfers",
        "custody_ledger_leaves",
        "outbox",
    ):
        for row in await forensics.rows(f"SELECT * FROM {table}"):  # noqa: S608
            dump.append(" ".join(str(v) for v in row))
    everything = "\n".join(dump)
    for value in [*secrets.values(), "Show the dress", "Phum Prek"]:
        assert value not in everything
    # ... while the API gives it back to someone allowed to read it.
    got = await forensics.client.get(
        f"/api/v1/evidence/{item['id']}", headers=forensics.officer("fo.sokha")
    )
    assert got.json()["description"] == secrets["description"]
    for envelope in await forensics.outbox():
        assert envelope.aggregate_id.startswith("ps_") or envelope.event_type.startswith("ledger.")
        assert item["id"] not in envelope.model_dump_json()


# --- the ledger: dense under concurrency, append-only in the store --------------------------------


async def test_concurrent_writers_get_dense_gap_free_indexes(forensics) -> None:
    items = [await forensics.register(user=f"fo.{n}") for n in range(4)]
    forensics.clock.advance(minutes=5)
    requests = [
        (await forensics.hand_over(item["id"], f"fo.{n}", f"lab.{n}")).json()
        for n, item in enumerate(items)
    ]
    forensics.clock.advance(minutes=5)

    async def register(n: int) -> int:
        response = await forensics.client.post(
            "/api/v1/evidence", json=forensics.item_body(), headers=forensics.officer(f"fo.x{n}")
        )
        assert response.status_code == 201, response.text
        return int(response.json()["registration"]["ledger_index"])

    async def accept(n: int) -> int:
        response = await forensics.accept(items[n]["id"], requests[n]["id"], f"lab.{n}")
        assert response.status_code == 200, response.text
        return int(response.json()["event"]["ledger_index"])

    indexes = await asyncio.gather(*[register(n) for n in range(8)], *[accept(n) for n in range(4)])
    assert sorted(indexes) == list(range(4, 16))
    stored = [
        r[0]
        for r in await forensics.rows("SELECT ledger_index FROM custody_ledger_leaves ORDER BY 1")
    ]
    assert stored == list(range(16))
    heads = [
        r[0]
        for r in await forensics.rows("SELECT tree_size FROM custody_ledger_tree_heads ORDER BY 1")
    ]
    assert heads == list(range(1, 17))
    verified = await forensics.client.get(
        "/api/v1/ledger/verify", headers=forensics.token("auditor", user="aud.1")
    )
    assert verified.json()["ok"] is True, verified.text
    assert verified.json()["tree_heads_verified"] == 16


async def test_the_store_refuses_to_rewrite_custody(forensics) -> None:
    item = await forensics.register()
    for statement in (
        "UPDATE evidence_custody_events SET to_user = 'someone.else'",
        "DELETE FROM evidence_custody_events",
        "UPDATE custody_ledger_leaves SET leaf_hash = leaf_hash",
        "DELETE FROM custody_ledger_tree_heads",
        "UPDATE evidence_items SET sha256 = NULL",
        "DELETE FROM evidence_items",
        "TRUNCATE custody_ledger_leaves",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with forensics.runtime.engine.begin() as conn:
                await conn.execute(sa.text(statement))
    assert await forensics.scalar("SELECT count(*) FROM evidence_custody_events") == 1
    assert item["custodian"] == "fo.dara"


async def test_ledger_parameters_out_of_range_are_422(forensics) -> None:
    auditor = forensics.token("auditor", user="aud.1")
    empty = await forensics.client.get("/api/v1/ledger/tree-head", headers=auditor)
    assert empty.status_code == 404
    await forensics.register()
    checks = {
        "/api/v1/ledger/proofs/inclusion?index=1&tree_size=1": "index",
        "/api/v1/ledger/proofs/inclusion?index=0&tree_size=5": "tree_size",
        "/api/v1/ledger/proofs/consistency?first=2&second=1": "first",
        "/api/v1/ledger/proofs/consistency?first=1&second=3": "second",
        "/api/v1/ledger/entries?start=5&end=2": "end",
    }
    for url, field in checks.items():
        response = await forensics.client.get(url, headers=auditor)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["detail"][0]["loc"][-1] == field
    many = await forensics.client.get("/api/v1/ledger/entries?start=0&end=5000", headers=auditor)
    assert len(many.json()["entries"]) == 1
    key = await forensics.client.get(
        "/api/v1/ledger/public-key", headers={**auditor, "Accept": "text/plain"}
    )
    assert key.text.strip() == forensics.fx.signer.verifier_key
