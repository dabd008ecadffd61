"""Adapters without I/O beyond a temporary file: GeoIP, ids, media sniffing, the feed decoder."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from cpu_icac.adapters.geoip import GeoIpLocator, location_of, province_code_of, write_test_database
from cpu_icac.adapters.ids import uuid7
from cpu_icac.domain.jurisdiction import IpLocation
from cpu_icac.domain.media import sniff_media
from cpu_icac.domain.parsing import parse_tip_file
from cpu_icac.entrypoints.stream import RefusedFile, decode_tip, tip_event_id
from cpu_icac.service_layer.ingest import Incoming
from cpu_shared.messaging.consumer import InvalidEvent

DATA = Path(__file__).parent / "data"


def test_the_test_geoip_database(tmp_path: Path) -> None:
    locator = GeoIpLocator(write_test_database(tmp_path / "city.mmdb"))
    try:
        assert locator.locate("203.0.113.45") == IpLocation("KH", "12")
        assert locator.locate("198.51.100.23") == IpLocation("KH", "17")
        assert locator.locate("192.0.2.10") == IpLocation("US", None)
        assert locator.locate("10.0.0.1") == IpLocation(None, None)
        assert locator.locate("2001:db8::1") == IpLocation(None, None)
        assert locator.locate("not an address") == IpLocation(None, None)
        assert locator.locate_all(["203.0.113.1"]) == {"203.0.113.1": IpLocation("KH", "12")}
    finally:
        locator.close()


def test_records_of_maxmind_and_unit_built_databases() -> None:
    city = {"country": {"iso_code": "KH"}, "subdivisions": [{"iso_code": "KH-3"}]}
    assert location_of(city) == IpLocation("KH", "03")
    assert location_of({"registered_country": {"iso_code": "th"}}) == IpLocation("TH")
    assert location_of({"country_code": "KH", "province_code": 25}) == IpLocation("KH", "25")
    # A province outside Cambodia's 25 is not a province; other countries get none.
    assert location_of({"country": {"iso_code": "KH"}, "subdivisions": [{"iso_code": "99"}]}) == (
        IpLocation("KH", None)
    )
    assert location_of({"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "12"}]}) == (
        IpLocation("US", None)
    )
    assert location_of("garbage") == IpLocation(None)
    assert [province_code_of(v) for v in ("12", "KH-12", "kh-7", 1, "26", "0", None)] == [
        "12",
        "12",
        "07",
        "01",
        None,
        None,
        None,
    ]


def test_ids_are_version_7_and_increase() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)
    # 62 random bits each: 5,000 ids in one millisecond or so still differ past the counter.
    assert len({i.int & ((1 << 62) - 1) for i in ids}) == len(ids)


def test_random_ids_are_version_4_and_distinct() -> None:
    from cpu_icac.adapters.ids import uuid4

    ids = [uuid4() for _ in range(5000)]  # more than one pool of random bytes
    assert all(i.version == 4 and i.variant == "specified in RFC 4122" for i in ids)
    assert len(set(ids)) == len(ids)
    assert len({i.bytes[:4] for i in ids}) > 4900
    # Equal to what the standard constructors make of the same bits.
    for made in ids[:500]:
        assert made == uuid.UUID(bytes=made.bytes, version=4)
        assert str(made) == str(uuid.UUID(bytes=made.bytes))
        assert made.is_safe == uuid.UUID(bytes=made.bytes).is_safe
        assert hash(made) == hash(uuid.UUID(int=made.int))
    for made in [uuid7() for _ in range(500)]:
        assert made == uuid.UUID(made.hex) and repr(made) == repr(uuid.UUID(made.hex))


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42", "video/mp4"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81", "video/webm"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
        (b"BM\x36\x00\x0c\x00\x00\x00\x00\x00\x36\x00\x00\x00", "image/bmp"),
    ],
)
def test_images_and_videos_are_recognised(head: bytes, kind: str) -> None:
    assert sniff_media(head) == kind


@pytest.mark.parametrize(
    "head", [b'{"provider": "ncmec"}', b"<?xml version", b"md5,sha1\n", b"BMW,Audi\n", b""]
)
def test_text_is_not_media(head: bytes) -> None:
    assert sniff_media(head) is None


def _record(value: bytes, key: bytes = b"k", offset: int = 7) -> ConsumerRecord:
    return ConsumerRecord("icac.tips.inbound", 2, offset, 0, 0, key, value, None, 1, len(value), ())


def test_the_feed_decoder() -> None:
    line = (DATA / "sample-tips.jsonl").read_text().splitlines()[0]
    decoded = decode_tip(_record(line.encode()))
    assert isinstance(decoded, Incoming)
    assert decoded.provenance == "icac.tips.inbound/2@7" and decoded.channel == "kafka"
    assert tip_event_id(decoded) == f"ncmec:CT-2026-100000001:{decoded.fingerprint}"
    # The same report re-serialised has the same inbox key.
    again = decode_tip(_record(json.dumps(json.loads(line), indent=2).encode()))
    assert tip_event_id(again) == tip_event_id(decoded)
    with pytest.raises(InvalidEvent, match=r"^invalid_report: files\[0\]\.md5: not an MD5"):
        report = json.loads(line)
        report["files"][0]["md5"] = "xyz"
        decode_tip(_record(json.dumps(report).encode()))
    with pytest.raises(InvalidEvent, match="empty"):
        decode_tip(_record(b""))
    long = json.loads(line)
    long["report_id"] = "R" * 128
    long["provider"] = "esp:" + "a" * 62
    assert tip_event_id(decode_tip(_record(json.dumps(long).encode()))).startswith("sha256:")


def test_a_file_payload_on_the_feed_is_refused_without_its_bytes() -> None:
    report = json.loads((DATA / "sample-tips.jsonl").read_text().splitlines()[0])
    report["files"][0]["data"] = "/9j/" + "A" * 5000
    value = json.dumps(report).encode()
    refused = decode_tip(_record(value, key=b"CT-2026-100000001"))
    assert isinstance(refused, RefusedFile)
    assert "files[0].data: file content is refused" in refused.reason
    assert refused.report_id == "CT-2026-100000001" and len(refused.digest) == 64
    assert "/9j/" not in repr(refused)
    assert tip_event_id(refused) == f"refused:{refused.digest}"


def test_rejected_import_items_keep_their_raw_bytes_but_never_a_file() -> None:
    good = (DATA / "sample-tips.jsonl").read_text().splitlines()[0]
    bad = json.loads(good)
    bad["incident_type"] = "nonsense"
    payload = json.loads(good)
    payload["files"][0]["content"] = "QUJD" * 400
    items = parse_tip_file("\n".join([good, json.dumps(bad), json.dumps(payload)]).encode())
    assert items[0].raw is None
    assert items[1].raw == json.dumps(bad).encode()
    assert items[2].rejection is not None and items[2].rejection.code == "file_payload"
    assert items[2].raw is None
    xml = (DATA / "sample-tips.xml").read_bytes().replace(b"Online Enticement", b"Nonsense")
    rejected = [i for i in parse_tip_file(xml) if i.rejection is not None]
    assert len(rejected) == 1 and rejected[0].raw is not None
    assert rejected[0].raw.startswith(b"<submission") and b"Nonsense" in rejected[0].raw


def test_event_bytes_are_the_envelope_of_the_contract() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from cpu_icac.service_layer.ingest import envelope_bytes
    from cpu_shared.contracts import new_envelope
    from cpu_shared.contracts.icac import TipReceived, TipTriaged
    from cpu_shared.messaging.envelope import EventEnvelope

    at = datetime(2026, 10, 8, 5, 6, 7, 891011, tzinfo=UTC)
    for data in (
        TipReceived(
            tip_id="ps_abcdefghijklmnopqrstuvwxyz",
            provider="esp:example-video",
            incident_type="online_enticement",
            received_at=at,
            country_code="KH",
            province_code="12",
        ),
        TipTriaged(
            tip_id="ps_abcdefghijklmnopqrstuvwxyz",
            priority="P1",
            reason_codes=["provider_priority_E", "linked_tips"],
            cluster_id="ps_bbcdefghijklmnopqrstuvwxyz",
            cluster_size=3,
            in_jurisdiction=True,
            province_code=None,
            hash_match_count=2,
        ),
    ):
        # Correlation ids come from callers: quotes, Khmer, control characters, over-long.
        for correlation in ("c-1", 'a "quoted"\\ id', "ឈ្មោះ\u200b\n\x01", "x" * 300):
            event_id, payload = envelope_bytes(
                data,
                source="icac",
                aggregate_id=data.tip_id,
                aggregate_version=2,
                correlation_id=correlation,
                occurred_at=at.astimezone(timezone(timedelta(hours=7))),
            )
            reference = new_envelope(
                data,
                source="icac",
                aggregate_id=data.tip_id,
                aggregate_version=2,
                correlation_id=correlation[:200],
            )
            expected = EventEnvelope.model_validate(
                {**reference.model_dump(), "event_id": event_id, "occurred_at": at}
            ).to_bytes()
            assert payload == expected
            assert EventEnvelope.from_bytes(payload).event_id == event_id
            assert event_id.version == 4


def test_bytes_that_may_hold_a_file_are_never_kept() -> None:
    from cpu_icac.domain.media import may_carry_file

    line = (DATA / "sample-tips.jsonl").read_text().splitlines()[0]
    assert not may_carry_file(line.encode())
    assert may_carry_file(b"\xff\xd8\xff\xe0" + bytes(100))
    assert may_carry_file(b'{"report_id": "X", "note": "\xff\xfe binary"}')
    sneaky = json.loads(line)
    sneaky["attachment_b64"] = "QUJD" * 400  # not a known payload key: refused as unexpected
    assert may_carry_file(json.dumps(sneaky).encode())
    items = parse_tip_file(
        b"\n".join([json.dumps(sneaky).encode(), b'{"provider": "ncmec", "x": "\xff\xd8"}'])
    )
    assert [i.rejection.code for i in items if i.rejection] == ["invalid_report"] * 2
    assert [i.raw for i in items] == [None, None]
    xml = (
        (DATA / "sample-tips.xml")
        .read_bytes()
        .replace(
            b"</report>\n    <fileDetails>",
            b"</report><report><fileData>"
            + b"QUJD" * 400
            + b"</fileData></report>\n    <fileDetails>",
            1,
        )
    )
    rejected = [i for i in parse_tip_file(xml) if i.rejection is not None]
    assert len(rejected) == 1 and "exactly one <report>" in rejected[0].rejection.reason
    assert rejected[0].raw is None
    # On the feed: quarantined as a digest, not dead-lettered with its bytes.
    refused = decode_tip(_record(json.dumps(sneaky).encode()))
    assert isinstance(refused, RefusedFile) and refused.code == "may_carry_file"
    assert "unexpected field" in refused.reason
    binary = decode_tip(_record(b"\x89PNG\r\n\x1a\n" + bytes(64)))
    assert isinstance(binary, RefusedFile) and binary.code == "may_carry_file"
