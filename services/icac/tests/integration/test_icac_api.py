"""The icac API on PostgreSQL: ingest, dedup and versions, enrichment, linking, hash sets,
hostile files, encryption at rest, and the analyst's workflow with its events."""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from cpu_icac.domain.hash_sets import HashIndex, load_hash_set
from cpu_icac.domain.jurisdiction import IpLocation, assess_jurisdiction
from cpu_icac.domain.priority import assess_priority
from cpu_icac.domain.tip_report import parse_tip_report
from cpu_shared.contracts.icac import TipClosed, TipEscalated, TipReceived, TipTriaged

ANALYST = ("icac_analyst",)
IMPORT_KEYS = {"created", "updated", "unchanged", "rejected", "results"}
RESULT_KEYS = {"index", "report_id", "status", "tip_id", "reason"}
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)


def recent(hours: float = 2) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def tip(report_id: str, **changes: Any) -> dict[str, Any]:
    """A small valid report in Phnom Penh, changed as asked."""
    base: dict[str, Any] = {
        "provider": "ncmec",
        "report_id": report_id,
        "incident_type": "child_sexual_abuse_material",
        "incident_at": recent(),
        "provider_priority": "2",
        "reported_persons": [
            {
                "screen_names": [f"user_{report_id.lower()}"],
                "emails": [],
                "phones": [],
                "ip_events": [{"ip": "203.0.113.9", "event": "upload", "at": recent(400)}],
            }
        ],
        "victims": [{"age_estimate": 11, "sex": "female"}],
        "files": [],
        "narrative": f"Synthetic narrative for {report_id}.",
    }
    base.update(changes)
    return base


# --- ingest, dedup, versions -------------------------------------------------------------------


async def test_sample_tips_are_triaged_with_reasons(icac: Any, samples: list[Any]) -> None:
    ids = []
    for report in samples:
        response = await icac.post_tip(report)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "created"
        ids.append(body["tip_id"])
    first = await icac.tip(ids[0])
    assert first["provider"] == "ncmec"
    assert first["report_id"] == "CT-2026-100000001"
    assert first["status"] == "queued"
    assert first["province_code"] == "12"  # 203.0.113.45: Phnom Penh
    assert first["cluster_id"] == first["id"]
    assert first["hash_matches"] == []
    assert {r["code"] for r in first["priority_reasons"]} >= {
        "provider_priority_2",
        "incident_child_sexual_abuse_material",
        "victim_age_6_12",
    }
    assert all({"code", "points", "text"} <= set(r) for r in first["priority_reasons"])
    assert first["report"]["reported_persons"][0]["screen_names"] == ["lotus_boy_77"]
    # The priority is the rules' (the domain's assess_priority on the same facts).
    report = parse_tip_report(samples[0])
    expected = assess_priority(
        report,
        now=datetime.fromisoformat(first["received_at"]),
        jurisdiction=assess_jurisdiction(report, {"203.0.113.45": IpLocation("KH", "12")}),
    )
    assert first["priority"] == expected.level
    assert [r["code"] for r in first["priority_reasons"]] == list(expected.reason_codes)

    siem_reap = await icac.tip(ids[1])
    assert siem_reap["province_code"] == "17"
    assert siem_reap["priority"] == "P2"  # 30 (priority 1) + 30 (enticement) + 5 (a child of 14)
    abroad = await icac.tip(ids[2])
    assert abroad["jurisdiction"]["no_jurisdiction_candidate"] is True
    assert abroad["country_code"] == "US"
    assert "no_cambodian_indicator" in {r["code"] for r in abroad["priority_reasons"]}

    events = await icac.outbox()
    assert [e.event_type for e in events] == ["tip.received", "tip.triaged"] * 3
    received = TipReceived.model_validate(events[0].data)
    triaged = TipTriaged.model_validate(events[1].data)
    assert events[0].aggregate_id == received.tip_id == triaged.tip_id
    assert received.province_code == "12" and received.country_code == "KH"
    assert triaged.priority == first["priority"]
    assert received.tip_id.startswith("ps_") and first["id"] not in json.dumps(events[0].data)


async def test_a_resend_is_ignored_and_a_change_is_a_new_version(icac: Any) -> None:
    report = tip("CT-VERSIONS-1")
    created = await icac.post_tip(report)
    assert created.status_code == 201
    tip_id = created.json()["tip_id"]
    again = await icac.post_tip(report)
    assert again.status_code == 200
    assert again.json() == {**created.json(), "status": "unchanged", "priority": None}
    changed = copy.deepcopy(report)
    changed["provider_priority"] = "E"
    updated = await icac.post_tip(changed)
    assert updated.status_code == 200
    assert updated.json()["status"] == "updated" and updated.json()["tip_id"] == tip_id
    assert updated.json()["priority"] == "P1"
    # The first version sent again is not news either.
    assert (await icac.post_tip(report)).json()["status"] == "unchanged"
    detail = await icac.tip(tip_id)
    assert detail["version"] == 2 and [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["priority"] == "P1" and detail["report"]["provider_priority"] == "E"
    events = await icac.outbox()
    assert [(e.event_type, e.aggregate_version) for e in events] == [
        ("tip.received", 1),
        ("tip.triaged", 2),
        ("tip.triaged", 3),
    ]
    assert await icac.scalar("SELECT count(*) FROM icac_tip") == 1


async def test_links_in_the_samples(icac: Any, data_dir: Any) -> None:
    """shared/data/tips/README.md: teacher_sr is in two reports; CT-2026-100000001, XML
    100000002 and CMT 100000005 carry a file with the same MD5; CMT 100000005 is the same
    account as CT-2026-100000001; +85512345678 and +85512345679 are not a link."""
    for name, media in (
        ("sample-tips.jsonl", "application/x-ndjson"),
        ("sample-tips.xml", "application/xml"),
        ("sample-cmt-export.json", "application/json"),
    ):
        response = await icac.import_file((data_dir / name).read_bytes(), media)
        assert response.status_code == 200, response.text
        assert response.json()["rejected"] == 0
    rows = await icac.rows("SELECT report_id, id, cluster_id FROM icac_tip")
    cluster = {r.report_id: r.cluster_id for r in rows}
    ids = {r.report_id: r.id for r in rows}
    md5 = {"CT-2026-100000001", "100000002", "100000005"}
    assert len({cluster[r] for r in md5}) == 1
    assert cluster["CT-2026-100000001"] == ids["CT-2026-100000001"]  # the oldest tip's id
    assert cluster["HSI-KH-2026-0193"] == cluster["100000004"]
    assert cluster["HSI-KH-2026-0193"] != cluster["CT-2026-100000001"]
    assert cluster["EV-88811"] == ids["EV-88811"]
    detail = await icac.tip(str(ids["100000005"]))
    assert detail["cluster"]["size"] == 3
    assert {"md5", "screen_name", "email", "phone"} <= set(detail["cluster"]["linked_by"])
    assert {r["code"] for r in detail["priority_reasons"]} >= {"linked_tips"}
    # The first tip was re-assessed when its cluster grew.
    first = await icac.tip(str(ids["CT-2026-100000001"]))
    assert "linked_tips" in {r["code"] for r in first["priority_reasons"]}
    response = await icac.client.get(
        f"/api/v1/clusters/{cluster['HSI-KH-2026-0193']}", headers=icac.token(*ANALYST)
    )
    assert response.status_code == 200
    assert {t["report_id"] for t in response.json()["tips"]} == {"HSI-KH-2026-0193", "100000004"}
    assert response.json()["linked_by"] == ["screen_name"]


async def test_a_cluster_that_grows_reprioritises_its_open_tips(icac: Any) -> None:
    shared = {"screen_names": ["same_subject"], "emails": [], "phones": [], "ip_events": []}
    ids = []
    levels = []
    for n in range(6):
        report = tip(f"GROW-{n}", provider_priority="3", reported_persons=[shared], victims=[])
        response = await icac.post_tip(report)
        assert response.status_code == 201
        ids.append(response.json()["tip_id"])
        levels.append(response.json()["priority"])
    rows = {str(r.id): r for r in await icac.rows("SELECT id, cluster_id, reasons FROM icac_tip")}
    assert {rows[i].cluster_id for i in ids} == {rows[ids[0]].cluster_id}
    for tip_id in ids:
        codes = [code for code, _ in json.loads(rows[tip_id].reasons)]
        assert "cluster_5_plus" in codes and "linked_tips" not in codes, (tip_id, codes)
    # Each tip is scored as assess_priority says for a cluster of six.
    for n, tip_id in enumerate(ids):
        detail = await icac.tip(tip_id)
        report = parse_tip_report(detail["report"])
        expected = assess_priority(
            report,
            now=datetime.fromisoformat(detail["received_at"]),
            cluster_size=6,
            jurisdiction=assess_jurisdiction(report, {"203.0.113.9": IpLocation("KH", "12")}),
        )
        assert detail["priority"] == expected.level, n
        assert detail["priority_score"] == expected.score, n


# --- import files ------------------------------------------------------------------------------


def _assert_shape(body: dict[str, Any]) -> None:
    assert set(body) == IMPORT_KEYS
    for result in body["results"]:
        assert set(result) == RESULT_KEYS
    assert sum(body[k] for k in ("created", "updated", "unchanged", "rejected")) == len(
        body["results"]
    )


async def test_import_answer_for_the_three_formats(icac: Any, data_dir: Any) -> None:
    jsonl = await icac.import_file(
        (data_dir / "sample-tips.jsonl").read_bytes(), "application/x-ndjson"
    )
    assert jsonl.status_code == 200, jsonl.text
    assert jsonl.headers["location"].startswith("/api/v1/tip-imports/")
    body = jsonl.json()
    _assert_shape(body)
    assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (3, 0, 0, 0)
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert [r["report_id"] for r in body["results"]] == [
        "CT-2026-100000001",
        "HSI-KH-2026-0193",
        "EV-88811",
    ]
    assert all(
        r["status"] == "created" and r["tip_id"] and r["reason"] is None for r in body["results"]
    )

    xml = await icac.import_file((data_dir / "sample-tips.xml").read_bytes(), "application/xml")
    body = xml.json()
    _assert_shape(body)
    assert [r["report_id"] for r in body["results"]] == ["100000002", "100000004"]
    assert body["created"] == 2

    cmt = await icac.import_file(
        (data_dir / "sample-cmt-export.json").read_bytes(), "application/json"
    )
    body = cmt.json()
    _assert_shape(body)
    assert body["results"] == [
        {
            "index": 0,
            "report_id": "100000005",
            "status": "created",
            "tip_id": body["results"][0]["tip_id"],
            "reason": None,
        }
    ]

    # Importing the same files again changes nothing.
    again = await icac.import_file((data_dir / "sample-tips.xml").read_bytes(), "text/xml")
    assert again.json()["unchanged"] == 2 and again.json()["created"] == 0
    job = await icac.client.get(again.headers["location"], headers=icac.token(*ANALYST))
    assert job.json()["status"] == "completed" and job.json()["unchanged"] == 2


BARE_REPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<report>
  <incidentSummary>
    <incidentType>Online Enticement of Children for Sexual Acts</incidentType>
    <incidentDateTime>2026-10-06T20:40:00Z</incidentDateTime>
  </incidentSummary>
  <personOrUserReported><screenName>bare_report_user</screenName></personOrUserReported>
</report>"""


async def test_a_bare_report_takes_its_id_from_the_parameter_or_its_content(icac: Any) -> None:
    named = await icac.import_file(BARE_REPORT, "application/xml", params={"report_id": "CT-777"})
    assert named.json()["results"][0]["report_id"] == "CT-777"
    hashed = await icac.import_file(BARE_REPORT, "application/xml")
    first = hashed.json()["results"][0]
    assert first["report_id"].startswith("xml-") and first["status"] == "created"
    again = await icac.import_file(BARE_REPORT, "application/xml")
    assert again.json()["results"][0] == {**first, "status": "unchanged"}


async def test_a_bad_report_is_quarantined_and_the_others_go_in(
    icac: Any, samples: list[Any]
) -> None:
    bad = dict(samples[0], report_id="BAD-1", files=[{"file_name": "x.jpg", "md5": "zz"}])
    lines = [json.dumps(samples[1]), json.dumps(bad), "{not json", json.dumps(samples[2])]
    response = await icac.import_file("\n".join(lines).encode(), "application/x-ndjson")
    body = response.json()
    _assert_shape(body)
    assert [r["status"] for r in body["results"]] == ["created", "rejected", "rejected", "created"]
    assert body["results"][1]["report_id"] == "BAD-1"
    assert body["results"][1]["reason"] == "files[0].md5: not an MD5 hash (32 hexadecimal digits)"
    assert body["results"][1]["tip_id"] is None
    listed = await icac.client.get("/api/v1/quarantine", headers=icac.token(*ANALYST))
    assert listed.json()["total"] == 2
    entry = next(i for i in listed.json()["items"] if i["report_id"] == "BAD-1")
    assert entry["reason"] == body["results"][1]["reason"] and entry["raw_kept"] is True
    one = await icac.client.get(f"/api/v1/quarantine/{entry['id']}", headers=icac.token(*ANALYST))
    assert json.loads(one.json()["raw"])["report_id"] == "BAD-1"
    raw = await icac.scalar("SELECT raw FROM icac_quarantine WHERE report_id = 'BAD-1'")
    assert raw.startswith("enc1.")


# --- hostile files -----------------------------------------------------------------------------

GOOD_SUBMISSION = """<submission reportId="{n}" priority="2"><report><incidentSummary>
<incidentType>Child Sex Trafficking</incidentType></incidentSummary>
<personOrUserReported><screenName>hostile_{n}</screenName></personOrUserReported></report></submission>"""

ENTITY_EXPANSION = (
    b"""<?xml version="1.0"?>
<!DOCTYPE reports [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<reports provider="ncmec">"""
    + GOOD_SUBMISSION.format(n=900001).encode()
    + b"""
<submission reportId="900002"><report><incidentSummary><incidentType>&lol9;</incidentType>
</incidentSummary></report></submission></reports>"""
)

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE report [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<report><incidentSummary><incidentType>&xxe;</incidentType></incidentSummary></report>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE reports SYSTEM "http://attacker.example/evil.dtd">
<reports/>"""

TOO_DEEP = (
    b'<reports provider="ncmec">'
    + GOOD_SUBMISSION.format(n=900003).encode()
    + b"<submission>"
    + b"<a>" * 100
    + b"</a>" * 100
    + b"</submission></reports>"
)

MALFORMED_AFTER_GOOD = (
    b'<reports provider="ncmec">'
    + "".join(GOOD_SUBMISSION.format(n=900010 + n) for n in range(3)).encode()
    + b'<submission reportId="900020"><report><incidentSummary></report></reports>'
)


async def _counts(icac: Any) -> tuple[int, int, int, int]:
    return (
        await icac.scalar("SELECT count(*) FROM icac_tip"),
        await icac.scalar("SELECT count(*) FROM icac_tip_version"),
        await icac.scalar("SELECT count(*) FROM icac_quarantine"),
        await icac.scalar("SELECT count(*) FROM outbox"),
    )


async def test_hostile_xml_is_refused_whole_and_nothing_else_is_lost(
    icac: Any, data_dir: Any
) -> None:
    await icac.import_file((data_dir / "sample-tips.jsonl").read_bytes(), "application/x-ndjson")
    before = await _counts(icac)
    cases = [
        (ENTITY_EXPANSION, 400, "entit"),
        (EXTERNAL_ENTITY, 400, "external"),
        (EXTERNAL_DTD, 400, "external"),
        (TOO_DEEP, 400, "deeper than 64"),
        (MALFORMED_AFTER_GOOD, 400, "not well-formed"),
        (b"%PDF-1.7 not a tip file", 415, "not JSON lines"),
        (JPEG, 415, "image"),
    ]
    for data, status, words in cases:
        response = await icac.import_file(data, "application/xml")
        assert response.status_code == status, (words, response.text)
        assert set(response.json()) == {"detail"}
        assert words in response.json()["detail"], response.json()
        job = await icac.client.get(response.headers["location"], headers=icac.token(*ANALYST))
        assert job.json()["status"] == "refused" and job.json()["refusal_reason"]
        # Not one report of the hostile file is stored, not even the good ones before the bad.
        assert await _counts(icac) == before
    # A good import after them works.
    good = await icac.import_file((data_dir / "sample-tips.xml").read_bytes(), "application/xml")
    assert good.status_code == 200 and good.json()["created"] == 2
    # Everything held before is still there and readable.
    listed = await icac.client.get("/api/v1/tips", headers=icac.token(*ANALYST))
    assert listed.json()["total"] == 5


async def _stream(total: int, chunk: int = 1024 * 1024) -> AsyncIterator[bytes]:
    line = (json.dumps(tip("BIG-0")) + "\n").encode()
    block = line * (chunk // len(line))
    sent = 0
    while sent < total:
        yield block
        sent += len(block)


async def test_an_oversized_import_is_refused_and_nothing_is_stored(icac: Any) -> None:
    before = await _counts(icac)
    # 100 MB streamed without a length: refused once past the limit (5 MB in these tests).
    streamed = await icac.client.post(
        "/api/v1/tips/import",
        content=_stream(100 * 1024 * 1024),
        headers={"Content-Type": "application/x-ndjson", **icac.token(*ANALYST)},
    )
    assert streamed.status_code == 413, streamed.text
    assert "limit" in streamed.json()["detail"]
    # Announced by Content-Length: refused before a byte is read.
    declared = await icac.client.post(
        "/api/v1/tips/import",
        content=b"x" * (6 * 1024 * 1024),
        headers={"Content-Type": "application/x-ndjson", **icac.token(*ANALYST)},
    )
    assert declared.status_code == 413
    assert await _counts(icac) == before
    jobs = await icac.client.get("/api/v1/tip-imports", headers=icac.token(*ANALYST))
    assert [j["status"] for j in jobs.json()["items"]] == ["refused"]
    assert jobs.json()["items"][0]["refusal_code"] == "too_large"


async def test_file_content_is_never_accepted(icac: Any, samples: list[Any]) -> None:
    image = base64.b64encode(JPEG * 20).decode()
    with_data = copy.deepcopy(samples[0])
    with_data["files"][0]["data"] = image
    refused = await icac.post_tip(with_data)
    assert refused.status_code == 422
    assert refused.json()["code"] == "file_payload"
    assert "files[0].data: file content is refused" in refused.json()["detail"]
    with_uri = dict(samples[1], narrative=f"see data:image/jpeg;base64,{image}")
    assert (await icac.post_tip(with_uri)).json()["code"] == "file_payload"
    rows = await icac.rows("SELECT reason_code, raw, raw_omitted, raw_sha256 FROM icac_quarantine")
    assert [(r.reason_code, r.raw, r.raw_omitted) for r in rows] == [
        ("file_payload", None, "file_payload")
    ] * 2
    assert all(len(r.raw_sha256) == 64 for r in rows)
    # An image sent as a report, as an import file or as a hash set: refused by its bytes.
    as_body = await icac.client.post(
        "/api/v1/tips",
        content=JPEG,
        headers={"Content-Type": "application/json", **icac.token(*ANALYST)},
    )
    assert as_body.status_code == 415 and "image" in as_body.json()["detail"]
    as_import = await icac.import_file(JPEG, "application/json")
    assert as_import.status_code == 415
    as_hashes = await icac.client.post(
        "/api/v1/hash-sets",
        files={"file": ("list.csv", JPEG, "text/csv")},
        data={"name": "sneaky"},
        headers=icac.token("supervisor"),
    )
    assert as_hashes.status_code == 415
    # A field the platform does not know, holding base64: refused as unexpected, and its
    # bytes are not kept either (they may be a file).
    sneaky = dict(samples[0], report_id="SNEAKY-1", attachment_b64=image)
    refused_sneaky = await icac.post_tip(sneaky)
    assert refused_sneaky.status_code == 422 and refused_sneaky.json()["code"] == "invalid_report"
    row = (
        await icac.rows("SELECT raw, raw_omitted FROM icac_quarantine WHERE report_id = 'SNEAKY-1'")
    )[0]
    assert (row.raw, row.raw_omitted) == (None, "may_carry_file")
    # In an import: that report is rejected (nothing of it kept), the others go in.
    lines = [json.dumps(samples[2]), json.dumps(with_data)]
    body = (await icac.import_file("\n".join(lines).encode(), "application/x-ndjson")).json()
    assert [r["status"] for r in body["results"]] == ["created", "rejected"]
    assert "file content is refused" in body["results"][1]["reason"]
    assert await icac.scalar("SELECT count(*) FROM icac_quarantine WHERE raw IS NOT NULL") == 0
    # Only the third sample was ever stored.
    assert await icac.scalar("SELECT count(*) FROM icac_tip") == 1
    # Refused uploads through the wrong door: multipart to the import, JSON is fine.
    multipart = await icac.client.post(
        "/api/v1/tips/import",
        files={"file": ("x.jpg", JPEG, "image/jpeg")},
        headers=icac.token(*ANALYST),
    )
    assert multipart.status_code == 415


# --- known-hash lists --------------------------------------------------------------------------


def _flip(pdq: str, bits: int, seed: int = 7) -> str:
    value = int(pdq, 16)
    for bit in random.Random(seed).sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


async def test_hash_set_upload_then_matching(icac: Any, samples: list[Any], data_dir: Any) -> None:
    vics = (data_dir / "sample-vics.json").read_bytes()
    denied = await icac.client.post(
        "/api/v1/hash-sets",
        files={"file": ("vics.json", vics, "application/json")},
        data={"name": "project-vic"},
        headers=icac.token(*ANALYST),
    )
    assert denied.status_code == 403
    uploaded = await icac.client.post(
        "/api/v1/hash-sets",
        files={"file": ("vics.json", vics, "application/json")},
        data={"name": "project-vic"},
        headers=icac.token("supervisor"),
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["entries"] == 3 and uploaded.json()["name"] == "project-vic"
    csv = (data_dir / "sample-hashes.csv").read_bytes()
    as_csv = await icac.client.post(
        "/api/v1/hash-sets",
        files={"file": ("national.csv", csv, "text/csv")},
        data={"name": "national"},
        headers=icac.token("supervisor"),
    )
    assert as_csv.status_code == 201
    # The Project VIC document itself, as JSON (the name in the query).
    as_json = await icac.client.post(
        "/api/v1/hash-sets",
        params={"name": "non-pertinent"},
        content=json.dumps(
            {"value": [{"MD5": "AB" * 16, "Category": "0"}, {"MD5": "CD" * 16, "Category": 1}]}
        ),
        headers={"Content-Type": "application/json", **icac.token("supervisor")},
    )
    assert as_json.status_code == 201, as_json.text
    listed = await icac.client.get("/api/v1/hash-sets", headers=icac.token(*ANALYST))
    assert [s["name"] for s in listed.json()["items"]] == [
        "project-vic",
        "national",
        "non-pertinent",
    ]

    # Tips received after the upload are matched: MD5 exactly (category 1: known CSAM) ...
    viral = (await icac.post_tip(samples[2])).json()
    detail = await icac.tip(viral["tip_id"])
    assert detail["hash_matches"] == [
        {
            "hash_set": "project-vic",
            "algorithm": "md5",
            "distance": 0,
            "category": 1,
            "category_label": "child_abuse_material",
            "file_index": 0,
        }
    ]
    assert "known_csam" in {r["code"] for r in detail["priority_reasons"]}
    # ... PDQ within 31 bits (the list's PDQ with 12 bits flipped) ...
    listed_pdq = "d8f8f0cce0f4a84f0e370a22028f67f0b36e2ed596623e1d33e6b39c4e9c9b22"
    near = tip("PDQ-NEAR", files=[{"file_name": "a.jpg", "pdq": _flip(listed_pdq, 12)}])
    far = tip("PDQ-FAR", files=[{"file_name": "b.jpg", "pdq": _flip(listed_pdq, 40)}])
    near_tip = await icac.tip((await icac.post_tip(near)).json()["tip_id"])
    assert [
        (m["hash_set"], m["algorithm"], m["distance"], m["category"])
        for m in near_tip["hash_matches"]
    ] == [("national", "pdq", 12, 1)]
    far_tip = await icac.tip((await icac.post_tip(far)).json()["tip_id"])
    assert far_tip["hash_matches"] == []
    # ... and category 0 never raises a priority.
    plain = tip("CAT0-NONE", files=[{"file_name": "c.jpg", "md5": "ef" * 16}])
    pertinent0 = tip("CAT0-MATCH", files=[{"file_name": "c.jpg", "md5": "ab" * 16}])
    plain_tip = await icac.tip((await icac.post_tip(plain)).json()["tip_id"])
    zero_tip = await icac.tip((await icac.post_tip(pertinent0)).json()["tip_id"])
    assert zero_tip["hash_matches"][0]["category"] == 0
    assert zero_tip["priority_score"] < plain_tip["priority_score"]
    assert "known_non_pertinent" in {r["code"] for r in zero_tip["priority_reasons"]}
    # The expected priorities are the rules' with the same index.
    index = HashIndex.of(
        [
            load_hash_set(vics, name="project-vic"),
            load_hash_set(csv, name="national"),
        ]
    )
    report = parse_tip_report(near)
    matches = index.match_report(report)
    assert [(m.algorithm, m.distance) for m in matches] == [("pdq", 12)]
    # A list that cannot be read is refused with the reason.
    broken = await icac.client.post(
        "/api/v1/hash-sets",
        files={"file": ("x.csv", b"name,notes\nfoo,bar\n", "text/csv")},
        data={"name": "broken"},
        headers=icac.token("supervisor"),
    )
    assert broken.status_code == 400 and "md5" in broken.json()["detail"]


# --- privacy -----------------------------------------------------------------------------------


async def test_personal_fields_are_encrypted_at_rest(
    icac: Any, samples: list[Any], data_dir: Any
) -> None:
    for name, media in (
        ("sample-tips.jsonl", "application/x-ndjson"),
        ("sample-tips.xml", "application/xml"),
        ("sample-cmt-export.json", "application/json"),
    ):
        await icac.import_file((data_dir / name).read_bytes(), media)
    bad = dict(samples[0], report_id="QUAR-1", incident_type="nonsense")
    await icac.post_tip(bad)
    tables = [
        r.table_name
        for r in await icac.rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    ]
    dump = []
    for table in tables:
        for row in await icac.rows(f'SELECT row_to_json(t)::text FROM "{table}" t'):  # noqa: S608
            dump.append(row[0])
    for row in await icac.rows("SELECT payload FROM outbox"):
        dump.append(bytes(row.payload).decode())
    text = "\n".join(dump).lower()
    plaintexts = [
        "lotus_boy_77",
        "user77@example.com",
        "85512345678",
        "12 345 678",
        "teacher_sr",
        "kh_share_2",
        "storage_user@example.com",
        "a3321@example.org",
        "203.0.113.45",
        "198.51.100.23",
        "img_0042.jpg",
        "photo_01.jpg",
        "example social network",
        "safety-reports@example.com",
        "chat logs held by provider",
        "account shared the folder",
        "previously reported",
        "0cc175b9c0f1b6a831c399e269772661",
    ]
    for value in plaintexts:
        assert value not in text, value
    tokens = await icac.rows("SELECT report FROM icac_tip_version")
    assert tokens and all(t.report.startswith("enc1.") for t in tokens)
    assert (await icac.scalar("SELECT raw FROM icac_quarantine")).startswith("enc1.")


# --- the analyst's workflow --------------------------------------------------------------------


async def test_claim_and_escalate_emit_what_casework_needs(icac: Any, samples: list[Any]) -> None:
    tip_id = (await icac.post_tip(samples[1])).json()["tip_id"]
    a1, a2 = (
        icac.token("icac_analyst", user="analyst1"),
        icac.token("icac_analyst", user="analyst2"),
    )
    url = f"/api/v1/tips/{tip_id}"
    early = await icac.client.post(
        f"{url}/disposition", json={"disposition": "escalate"}, headers=a1
    )
    assert early.status_code == 409 and early.json()["detail"].startswith("tip_not_claimed")
    assert (await icac.client.post(f"{url}/claim", headers=a1)).json()["claimed_by"] == "analyst1"
    taken = await icac.client.post(f"{url}/claim", headers=a2)
    assert taken.status_code == 409 and taken.json()["detail"].startswith("tip_claimed")
    not_yours = await icac.client.post(
        f"{url}/disposition", json={"disposition": "escalate"}, headers=a2
    )
    assert not_yours.status_code == 409 and not_yours.json()["detail"].startswith(
        "not_the_claimant"
    )
    done = await icac.client.post(
        f"{url}/disposition", json={"disposition": "escalate"}, headers=a1
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "escalated" and done.json()["event"] == "tip.escalated"
    again = await icac.client.post(
        f"{url}/disposition", json={"disposition": "actionable"}, headers=a1
    )
    assert again.status_code == 409 and again.json()["detail"].startswith("tip_disposed")

    event = (await icac.outbox())[-1]
    assert event.event_type == "tip.escalated" and event.aggregate_version == 3
    data = TipEscalated.model_validate(event.data)
    assert set(event.data) == set(TipEscalated.model_fields)
    assert data.priority == "P2" and data.incident_type == "online_enticement"
    assert data.province_code == "17" and data.victim_count == 1 and data.youngest_victim_age == 14
    assert (
        data.tip_id == event.aggregate_id and data.cluster_id and data.cluster_id.startswith("ps_")
    )
    assert "teacher" not in event.to_bytes().decode() and tip_id not in event.to_bytes().decode()
    detail = await icac.tip(tip_id, "supervisor")
    assert [a["action"] for a in detail["actions"]] == ["claim", "dispose"]
    assert detail["disposition"] == "escalate" and detail["disposed_by"] == "analyst1"


async def test_duplicate_release_and_close(icac: Any, samples: list[Any]) -> None:
    original = (await icac.post_tip(samples[0])).json()["tip_id"]
    copy_id = (await icac.post_tip(samples[2])).json()["tip_id"]
    a1 = icac.token("icac_analyst", user="analyst1")
    url = f"/api/v1/tips/{copy_id}"
    await icac.client.post(f"{url}/claim", headers=a1)
    # Only a supervisor releases someone else's claim.
    refused = await icac.client.post(
        f"{url}/release", json={"force": True}, headers=icac.token("icac_analyst", user="a2")
    )
    assert refused.status_code == 403
    released = await icac.client.post(
        f"{url}/release", json={"force": True}, headers=icac.token("supervisor", user="boss")
    )
    assert released.status_code == 200 and released.json()["status"] == "queued"
    await icac.client.post(f"{url}/claim", headers=a1)
    missing = await icac.client.post(
        f"{url}/disposition", json={"disposition": "duplicate"}, headers=a1
    )
    assert missing.status_code == 409 and missing.json()["detail"].startswith(
        "duplicate_needs_original"
    )
    closed = await icac.client.post(
        f"{url}/disposition",
        json={"disposition": "duplicate", "duplicate_of": original},
        headers=a1,
    )
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    event = (await icac.outbox())[-1]
    assert event.event_type == "tip.closed"
    assert TipClosed.model_validate(event.data).disposition == "duplicate"
    assert set(event.data) == {"tip_id", "disposition", "closed_at"}
    queue = await icac.client.get("/api/v1/tips", headers=a1)
    assert [t["id"] for t in queue.json()["items"]] == [original]
    closed_list = await icac.client.get("/api/v1/tips", params={"status": "closed"}, headers=a1)
    assert [t["id"] for t in closed_list.json()["items"]] == [copy_id]


async def test_queue_order_filters_access_and_audit(icac: Any, samples: list[Any]) -> None:
    ids = [(await icac.post_tip(r)).json()["tip_id"] for r in samples]
    a1 = icac.token(*ANALYST)
    queue = (await icac.client.get("/api/v1/tips", headers=a1)).json()
    levels = [t["priority"] for t in queue["items"]]
    rank = {"P1": 0, "P2": 1, "P3": 2, "informational": 3}
    assert levels == sorted(levels, key=rank.__getitem__)
    by_province = await icac.client.get("/api/v1/tips", params={"province": "17"}, headers=a1)
    assert [t["report_id"] for t in by_province.json()["items"]] == ["HSI-KH-2026-0193"]
    by_provider = await icac.client.get(
        "/api/v1/tips", params={"provider": "esp:example-video"}, headers=a1
    )
    assert [t["report_id"] for t in by_provider.json()["items"]] == ["EV-88811"]
    by_report = await icac.client.get(
        "/api/v1/tips", params={"report_id": "CT-2026-100000001"}, headers=a1
    )
    assert [t["id"] for t in by_report.json()["items"]] == [ids[0]]
    p1 = await icac.client.get("/api/v1/tips", params={"priority": "P1"}, headers=a1)
    assert all(t["priority"] == "P1" for t in p1.json()["items"])
    bad = await icac.client.get("/api/v1/tips", params={"province": "99"}, headers=a1)
    assert bad.status_code == 422
    for role in ("ops", "auditor", "investigator", "intake_officer"):
        assert (
            await icac.client.get(f"/api/v1/tips/{ids[0]}", headers=icac.token(role))
        ).status_code == 403
    assert (await icac.client.get("/api/v1/tips")).status_code == 401
    await icac.tip(ids[0])
    audit = await icac.client.get(
        "/api/v1/audit",
        params={"record_type": "tip", "record_id": ids[0]},
        headers=icac.token("auditor"),
    )
    actions = [e["action"] for e in audit.json()["entries"]]
    assert actions == ["tip.read", "tip.create"]
