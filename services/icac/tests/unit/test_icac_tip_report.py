"""The tip report model: validation with reasons that name fields and never echo values, the
refusal of file content, hash formats, and the content fingerprint."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cpu_icac.domain.tip_report import TipReport, TipReportError, parse_tip_report

DATA = Path(__file__).parent / "data"  # copies of ../shared/data samples
SECRET = "Sok-Dara-012345678"  # a value that must never appear in a reason


def sample() -> dict[str, Any]:
    line = (DATA / "sample-tips.jsonl").read_text().splitlines()[0]
    return json.loads(line)


def rejected(data: Any) -> TipReportError:
    with pytest.raises(TipReportError) as caught:
        parse_tip_report(data)
    return caught.value


def test_sample_line_is_valid_and_normalised() -> None:
    report = parse_tip_report(sample())
    assert report.key == ("ncmec", "CT-2026-100000001")
    assert report.incident_at == datetime(2026, 10, 3, 14, 22, tzinfo=UTC)
    assert report.files[0].md5 == "0cc175b9c0f1b6a831c399e269772661"
    assert report.youngest_victim_age() == 12
    assert report.ip_addresses() == ["203.0.113.45"]


def test_json_text_and_mapping_give_the_same_report() -> None:
    data = sample()
    assert parse_tip_report(json.dumps(data)) == parse_tip_report(data)
    assert parse_tip_report(json.dumps(data).encode()) == parse_tip_report(data)


@pytest.mark.parametrize(
    ("where", "payload_field"),
    [
        ("files", "content"),
        ("files", "data"),
        ("files", "bytes"),
        ("files", "file_data"),
        ("files", "base64"),
        ("root", "image_data"),
        ("reporter", "thumbnail"),
    ],
)
def test_a_file_payload_field_refuses_the_report(where: str, payload_field: str) -> None:
    data = sample()
    blob = base64.b64encode(b"\xff\xd8\xff\xe0 not really a jpeg").decode()
    target = {"files": data["files"][0], "root": data, "reporter": data["reporter"]}[where]
    target[payload_field] = blob
    error = rejected(data)
    assert error.code == "file_payload"
    assert payload_field in error.reason
    assert "only hashes and metadata" in error.reason
    assert blob not in error.reason


@pytest.mark.parametrize("field", ["narrative", "escalation_reason"])
def test_a_data_uri_in_free_text_refuses_the_report(field: str) -> None:
    data = sample()
    data[field] = "see data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ== attached"
    assert rejected(data).code == "file_payload"


def test_a_data_uri_as_file_name_refuses_the_report() -> None:
    data = sample()
    data["files"][0]["file_name"] = "data:video/mp4;base64,AAAAIGZ0eXBpc29t"
    error = rejected(data)
    assert error.code == "file_payload"
    assert error.reasons == (
        "files[0].file_name: file content is refused: send only hashes and metadata",
    )


def test_a_long_base64_run_in_the_narrative_refuses_the_report() -> None:
    data = sample()
    data["narrative"] = "Image follows: " + base64.b64encode(bytes(range(256)) * 8).decode()
    assert rejected(data).code == "file_payload"


def test_an_ordinary_narrative_with_the_word_data_is_fine() -> None:
    data = sample()
    data["narrative"] = "Provider data: account created 2025, data retained for 90 days."
    assert parse_tip_report(data).narrative is not None


@pytest.mark.parametrize(
    ("algorithm", "value", "message"),
    [
        ("md5", "0cc175b9c0f1b6a831c399e26977266", "32 hexadecimal"),
        ("md5", "0cc175b9c0f1b6a831c399e26977266g", "32 hexadecimal"),
        ("sha1", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b", "40 hexadecimal"),
        (
            "pdq",
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48b",
            "64 hexadecimal",
        ),
        (
            "pdq",
            "zz978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
            "64 hexadecimal",
        ),
    ],
)
def test_hash_formats_are_checked(algorithm: str, value: str, message: str) -> None:
    data = sample()
    data["files"][0][algorithm] = value
    error = rejected(data)
    assert error.code == "invalid_report"
    name = {"md5": "an MD5", "sha1": "a SHA-1", "pdq": "a PDQ"}[algorithm]
    assert error.reasons == (f"files[0].{algorithm}: not {name} hash ({message} digits)",)
    assert value not in error.reason


def test_upper_case_hashes_are_accepted_and_lower_cased() -> None:
    data = sample()
    data["files"][0]["md5"] = data["files"][0]["md5"].upper()
    data["files"][0]["pdq"] = data["files"][0]["pdq"].upper()
    report = parse_tip_report(data)
    assert report.files[0].md5 == "0cc175b9c0f1b6a831c399e269772661"
    assert report.files[0].pdq == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"


def test_a_file_needs_at_least_one_hash() -> None:
    data = sample()
    data["files"] = [{"file_name": "x.jpg", "viewed_by_provider": True}]
    assert rejected(data).reasons == ("files[0]: a file needs at least one of md5, sha1, pdq",)


@pytest.mark.parametrize("provider", ["ncmec", "hsi", "interpol", "esp:example-video", "esp:a.b_c"])
def test_known_providers(provider: str) -> None:
    data = sample()
    data["provider"] = provider
    assert parse_tip_report(data).provider == provider


@pytest.mark.parametrize("provider", ["google", "esp:", "ESP:x", "ncmec x", ""])
def test_unknown_providers_are_refused(provider: str) -> None:
    data = sample()
    data["provider"] = provider
    assert rejected(data).reasons[0].startswith("provider: not a known provider")


def test_reasons_name_every_bad_field_and_never_echo_a_value() -> None:
    data = sample()
    data["incident_type"] = SECRET
    data["provider_priority"] = SECRET
    data["incident_at"] = SECRET
    data["reported_persons"][0]["emails"] = [SECRET]
    data["reported_persons"][0]["phones"] = [SECRET]
    data["reported_persons"][0]["ip_events"][0]["ip"] = SECRET
    data["reported_persons"][0]["ip_events"][0]["event"] = SECRET
    data["victims"][0]["age_estimate"] = SECRET
    data["victims"][0]["sex"] = SECRET
    data["files"][0]["viewed_by_provider"] = SECRET
    data[SECRET] = "unexpected"
    error = rejected(data)
    assert error.code == "invalid_report"
    fields = [reason.split(":")[0] for reason in error.reasons]
    assert fields == [
        "incident_type",
        "incident_at",
        "provider_priority",
        "reported_persons[0].emails[0]",
        "reported_persons[0].phones[0]",
        "reported_persons[0].ip_events[0].ip",
        "reported_persons[0].ip_events[0].event",
        "victims[0].age_estimate",
        "victims[0].sex",
        "files[0].viewed_by_provider",
        "<field>",
    ]
    assert SECRET not in error.reason
    assert "Sok" not in error.reason and "012345678" not in error.reason


def test_reason_text_is_bounded() -> None:
    data = sample()
    data["files"] = [{"md5": "x"} for _ in range(200)]
    assert len(rejected(data).reason) <= 1000


def test_missing_required_fields_are_named() -> None:
    assert rejected({"provider": "ncmec"}).reasons == (
        "report_id: Field required",
        "incident_type: Field required",
    )


def test_not_json_and_not_an_object() -> None:
    assert rejected("{not json").reasons[0].startswith("report: Invalid JSON")
    assert rejected("[1, 2]").reasons == ("report: Input should be an object",)


def test_naive_times_are_refused_and_offsets_become_utc() -> None:
    data = sample()
    data["incident_at"] = "2026-10-03T14:22:00"
    assert rejected(data).reasons == ("incident_at: Input should have timezone info",)
    data["incident_at"] = "2026-10-03T21:22:00+07:00"
    assert parse_tip_report(data).incident_at == datetime(2026, 10, 3, 14, 22, tzinfo=UTC)


@pytest.mark.parametrize(
    ("given", "expected"), [(1, "1"), ("2", "2"), ("e", "E"), ("E", "E"), (None, None)]
)
def test_provider_priority_forms(given: object, expected: str | None) -> None:
    data = sample()
    data["provider_priority"] = given
    assert parse_tip_report(data).provider_priority == expected


def test_ip_addresses_are_checked_and_canonical() -> None:
    data = sample()
    events = data["reported_persons"][0]["ip_events"]
    events[0]["ip"] = "2001:DB8:0:0::1"
    events[1]["ip"] = "::ffff:203.0.113.45"
    report = parse_tip_report(data)
    assert [e.ip for e in report.reported_persons[0].ip_events] == ["2001:db8::1", "203.0.113.45"]
    for bad in ("256.1.1.1", "01.2.3.4", "1.2.3", "a:b", "example.com"):
        events[0]["ip"] = bad
        assert rejected(data).reasons == (
            "reported_persons[0].ip_events[0].ip: not an IPv4 or IPv6 address",
        )


def test_annotations_are_a_sorted_set_and_blank_text_is_absent() -> None:
    data = sample()
    data["annotations"] = ["sextortion", "csam_solicitation", "sextortion"]
    data["escalation_reason"] = "   "
    report = parse_tip_report(data)
    assert report.annotations == ("csam_solicitation", "sextortion")
    assert report.escalation_reason is None


def test_fingerprint_is_stable_across_forms_of_the_same_content() -> None:
    data = sample()
    base = parse_tip_report(data).content_fingerprint()
    assert len(base) == 64
    same = copy.deepcopy(data)
    same["files"][0]["md5"] = same["files"][0]["md5"].upper()
    same["incident_at"] = "2026-10-03T21:22:00+07:00"
    same["narrative"] = "  " + same["narrative"] + "  "
    reordered = dict(reversed(list(same.items())))
    assert parse_tip_report(json.dumps(reordered)).content_fingerprint() == base
    # The key is not content: a report's fingerprint does not depend on it.
    other_key = {**data, "provider": "hsi", "report_id": "X-1"}
    assert parse_tip_report(other_key).content_fingerprint() == base


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(provider_priority="1"),
        lambda d: d.update(narrative="changed"),
        lambda d: d["victims"].append({"age_estimate": 4}),
        lambda d: d["files"][0].update(viewed_by_provider=False),
        lambda d: d["reported_persons"][0]["emails"].append("x@example.com"),
    ],
)
def test_fingerprint_changes_with_the_content(change: Any) -> None:
    data = sample()
    base = parse_tip_report(data).content_fingerprint()
    change(data)
    assert parse_tip_report(data).content_fingerprint() != base


def test_report_is_immutable() -> None:
    report = parse_tip_report(sample())
    with pytest.raises(ValueError, match="frozen"):
        report.narrative = "changed"  # type: ignore[misc]
    assert isinstance(report, TipReport)


def test_one_serialisation_gives_the_stored_report_and_its_fingerprint() -> None:
    from cpu_icac.synthetic import synthetic_feed

    feed = synthetic_feed(300, now=datetime.now(UTC), duplicate_share=0, malformed_share=0)
    lines = [v for _, v in feed.messages] + [json.dumps(sample()).encode()]
    minimal = {"provider": "esp:x", "report_id": "R-1", "incident_type": "other"}
    lines.append(json.dumps(minimal).encode())
    for line in lines:
        report = parse_tip_report(line)
        text, fingerprint = report.serialised()
        assert fingerprint == report.content_fingerprint()
        assert "null" not in text
        # Stored without absent fields, it reads back as the same report.
        assert TipReport.model_validate_json(text) == report
