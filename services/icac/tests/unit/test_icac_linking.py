"""Deconfliction: the links the sample README promises, transitivity, the IP time window, the
identifiers that must not link, and opaque (blind-index) keys."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest

from cpu_icac.domain.jurisdiction import assess_jurisdiction
from cpu_icac.domain.linking import (
    IpSighting,
    PhoneReading,
    SubjectLinker,
    TipIdentifiers,
    normalise_email,
    normalise_identifier,
    normalise_ip,
    normalise_phone,
    normalise_screen_name,
    read_phone,
    read_phones,
    tip_identifiers,
)
from cpu_icac.domain.parsing import parse_tip_file
from cpu_icac.domain.tip_report import TipReport, TipReportError, parse_tip_report

DATA = Path(__file__).parent / "data"  # copies of ../shared/data samples
T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def sample_reports() -> list[TipReport]:
    out = []
    for name in ("sample-tips.jsonl", "sample-tips.xml", "sample-cmt-export.json"):
        out += [i.report for i in parse_tip_file((DATA / name).read_bytes()) if i.report]
    return out


def tip(report_id: str, **person: Any) -> TipReport:
    files = person.pop("files", [])
    return parse_tip_report(
        {
            "provider": "ncmec",
            "report_id": report_id,
            "incident_type": "online_enticement",
            "reported_persons": [person] if person else [],
            "files": files,
        }
    )


def link(*reports: TipReport, window: timedelta = timedelta(hours=48)) -> SubjectLinker:
    linker = SubjectLinker(ip_window=window)
    for report in reports:
        linker.add(tip_identifiers(report.report_id, report))
    return linker


def groups(linker: SubjectLinker) -> set[tuple[str, ...]]:
    return {c.tip_ids for c in linker.clusters()}


def test_the_links_in_the_samples() -> None:
    linker = link(*sample_reports())
    assert groups(linker) == {
        ("100000002", "100000005", "CT-2026-100000001"),  # one MD5; one account written 2 ways
        ("100000004", "HSI-KH-2026-0193"),  # teacher_sr
        ("EV-88811",),
    }
    cluster = linker.cluster_of("CT-2026-100000001")
    assert cluster.cluster_id == "100000002"
    assert {"md5", "screen_name", "email", "phone"} <= cluster.linked_by
    assert linker.cluster_of("HSI-KH-2026-0193").linked_by == {"screen_name"}


def test_phones_one_digit_apart_do_not_link() -> None:
    linker = link(tip("A", phones=["+85512345678"]), tip("B", phones=["+85512345679"]))
    assert groups(linker) == {("A",), ("B",)}


def test_links_are_transitive_and_the_cluster_id_is_the_smallest_tip_id() -> None:
    a = tip("tip-3", emails=["sok@example.com"])
    b = tip("tip-2", emails=["SOK@example.com "], phones=["012 345 678"])
    c = tip("tip-1", phones=["+855 12 345 678"], screen_names=["x"])
    d = tip("tip-4", screen_names=[" X "])
    lone = tip("tip-0", emails=["other@example.com"])
    linker = link(a, b, c, d, lone)
    assert groups(linker) == {("tip-1", "tip-2", "tip-3", "tip-4"), ("tip-0",)}
    assert {linker.cluster_id(t) for t in ("tip-1", "tip-2", "tip-3", "tip-4")} == {"tip-1"}
    assert linker.cluster_of("tip-4").size == 4
    assert linker.cluster_of("tip-4").linked_by == {"email", "phone", "screen_name"}


def test_clusters_do_not_depend_on_arrival_order() -> None:
    reports = sample_reports()
    expected = groups(link(*reports))
    for order in itertools.islice(itertools.permutations(reports), 0, 720, 37):
        assert groups(link(*order)) == expected


def ip(at: datetime, address: str = "203.0.113.45") -> dict[str, Any]:
    return {"ip": address, "event": "login", "at": at.isoformat()}


def test_ip_links_only_within_the_window() -> None:
    a = tip("A", ip_events=[ip(T0)])
    b = tip("B", ip_events=[ip(T0 + timedelta(hours=47))])
    c = tip("C", ip_events=[ip(T0 + timedelta(hours=47 + 49))])
    other_ip = tip("D", ip_events=[ip(T0, "203.0.113.46")])
    assert groups(link(a, b, c, other_ip)) == {("A", "B"), ("C",), ("D",)}
    assert groups(link(a, b, c, window=timedelta(hours=50))) == {("A", "B", "C")}
    assert groups(link(a, b, c, window=timedelta(hours=1))) == {("A",), ("B",), ("C",)}


def test_ip_window_chains_through_a_tip_in_between() -> None:
    a = tip("A", ip_events=[ip(T0)])
    c = tip("C", ip_events=[ip(T0 + timedelta(hours=80))])
    b = tip("B", ip_events=[ip(T0 + timedelta(hours=40))])
    linker = link(a, c)
    assert groups(linker) == {("A",), ("C",)}
    linker.add(tip_identifiers("B", b))
    assert groups(linker) == {("A", "B", "C")}
    assert linker.cluster_of("A").linked_by == {"ip"}


def test_ip_without_a_time_does_not_link_and_one_tip_does_not_link_itself() -> None:
    a = tip("A", ip_events=[{"ip": "203.0.113.45"}, ip(T0), ip(T0 + timedelta(hours=1))])
    b = tip("B", ip_events=[{"ip": "203.0.113.45"}])
    linker = link(a, b)
    assert groups(linker) == {("A",), ("B",)}
    assert linker.cluster_of("A").linked_by == frozenset()


def test_ipv4_mapped_address_is_the_same_ip() -> None:
    a = tip("A", ip_events=[ip(T0, "::ffff:203.0.113.45")])
    b = tip("B", ip_events=[ip(T0, "203.0.113.45")])
    assert groups(link(a, b)) == {("A", "B")}


MD5 = "0cc175b9c0f1b6a831c399e269772661"


def test_file_hashes_link_but_not_public_or_empty_files() -> None:
    a = tip("A", files=[{"md5": MD5, "publicly_available": False}])
    b = tip("B", files=[{"md5": MD5.upper()}])
    viral_1 = tip(
        "V1", files=[{"md5": "92eb5ffee6ae2fec3ad71c777531578f", "publicly_available": True}]
    )
    viral_2 = tip(
        "V2", files=[{"md5": "92eb5ffee6ae2fec3ad71c777531578f", "publicly_available": True}]
    )
    empty_1 = tip("E1", files=[{"md5": "d41d8cd98f00b204e9800998ecf8427e"}])
    empty_2 = tip("E2", files=[{"sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}])
    empty_3 = tip("E3", files=[{"md5": "d41d8cd98f00b204e9800998ecf8427e"}])
    assert groups(link(a, b, viral_1, viral_2, empty_1, empty_2, empty_3)) == {
        ("A", "B"),
        ("V1",),
        ("V2",),
        ("E1",),
        ("E2",),
        ("E3",),
    }
    linker = SubjectLinker()
    for report in (viral_1, viral_2):
        linker.add(tip_identifiers(report.report_id, report, link_public_files=True))
    assert groups(linker) == {("V1", "V2")}


def test_keys_are_opaque_blind_indexes() -> None:
    secret = b"k" * 32

    def blind(kind: str, value: str) -> str:
        return hmac.new(secret, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]

    reports = sample_reports()
    linker = SubjectLinker()
    for report in reports:
        identifiers = tip_identifiers(report.report_id, report, key=blind)
        assert not any("@" in key or "lotus" in key for _, key in identifiers.keys)
        linker.add(identifiers)
    assert groups(linker) == groups(link(*reports))


def test_linker_takes_keys_directly() -> None:
    linker = SubjectLinker(ip_window=timedelta(hours=1))
    linker.add(TipIdentifiers("t1", frozenset({("email", "k-1")})))
    linker.add(TipIdentifiers("t2", frozenset({("phone", "k-2")}), (IpSighting("ip-1", T0),)))
    linker.add(TipIdentifiers("t3", frozenset({("email", "k-1"), ("phone", "k-2")})))
    linker.add(TipIdentifiers("t4", ip_sightings=(IpSighting("ip-1", T0 + timedelta(minutes=59)),)))
    assert groups(linker) == {("t1", "t2", "t3", "t4")}
    assert len(linker) == 4


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("email", "  User77@Example.COM ", "user77@example.com"),
        ("phone", "+855 12 345 678", "+85512345678"),
        ("phone", "012 345 678", "+85512345678"),
        ("phone", "(+855) 97-000-111", "+85597000111"),
        ("phone", "not a phone", None),
        ("screen_name", "  Lotus_Boy_77 ", "lotus_boy_77"),
        ("screen_name", "STRASSE", "strasse"),
        ("screen_name", "Straße", "strasse"),
        ("ip", "::FFFF:203.0.113.45", "203.0.113.45"),
        ("ip", "2001:DB8::1", "2001:db8::1"),
        ("md5", " 0CC175B9C0F1B6A831C399E269772661", MD5),
    ],
)
def test_normalisation(kind: Any, raw: str, expected: str | None) -> None:
    assert normalise_identifier(kind, raw) == expected


def test_helpers() -> None:
    assert normalise_email("A@B.KH") == "a@b.kh"
    assert normalise_phone("12345678", "KH") == "+85512345678"
    assert normalise_screen_name("\uff34eacher_SR") != normalise_screen_name("teacher_sr")
    assert normalise_ip("nonsense") is None


def _two_parses(value: str) -> tuple[str | None, str | None]:
    """What linking and jurisdiction did before one parse served both."""
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(value, None))
    except phonenumbers.NumberParseException:
        region = None
    return normalise_phone(value, "KH"), region


def _phone_strings() -> list[str]:
    rng = random.Random(8)
    out = [
        "+855 12 345 678", "012 345 678", "0012 345 678", "00855 12 345 678", "+1 202 555 0100",
        "\uff0b855 12 345 678", "tel:+85512345678", "+855-12-345-678 ext. 12", "+999 123", "+", "",
        "(+855) 97-000-111", "011 855 12 345 678", "+0 12", "++855 12 345 678", "+1 (800) FLOWERS",
        "\uff100\uff10\uff0e00\uff0e\uff0e0x\uff0b ", "+855 0 12 345 678", "+800 1234 5678",
        "0085512345678",
    ]  # fmt: skip
    chars = "+0123456789 -()x\uff0e\uff0b\uff10\u0661"
    codes = ["855", "1", "44", "66", "84", "86", "7", "856", "95", "800", "979"]
    for _ in range(5000):
        out.append("".join(rng.choice(chars) for _ in range(rng.randrange(1, 18))))
        # Cambodian numbers as most come, every length, with and without separators.
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randrange(0, 18)))
        out.append(f"+855{digits}")
        out.append(f"+855 {digits[:2]} {digits[2:5]}-{digits[5:]}")
        digits = "".join(rng.choice("0123456789 ") for _ in range(rng.randrange(3, 14)))
        out.append(f"+{rng.choice(codes)} {digits}")
    return out


def test_one_phone_parse_gives_what_two_did() -> None:
    # Linking (E.164 as of Cambodia) and jurisdiction (the region of a "+" number) once read
    # every number twice; read_phone reads it once and must give both the same answers.
    for value in _phone_strings():
        reading = read_phone(value)
        assert (reading.e164, reading.region) == _two_parses(value), value
    report = tip("r1", phones=["+855 12 345 678", "012 999 888", "+66 2 123 4567", "+999 1"])
    phones = read_phones(report)
    assert phones["+66 2 123 4567"].region == "TH"
    assert phones["012 999 888"] == PhoneReading("+85512999888", None)
    assert tip_identifiers("t", report, phones=phones) == tip_identifiers("t", report)
    assert assess_jurisdiction(report, {}, phones=phones) == assess_jurisdiction(report, {})


def test_a_reports_ip_addresses_are_canonical_already() -> None:
    # tip_identifiers keys a report's IPs as they are: validation must give normalise_ip's text.
    raw = [
        "203.0.113.45", "::ffff:203.0.113.45", "::FFFF:cb00:712d", "2001:DB8:0:0:0:0:0:1",
        "2001:db8::1", "10.0.0.1", "fe80::1%1", "::", "1:2:3:4:5:6:7:8", "::1.2.3.4",
    ]  # fmt: skip
    taken = 0
    for value in raw:
        try:
            report = tip("r", ip_events=[{"ip": value, "at": T0.isoformat()}])
        except TipReportError:
            continue
        taken += 1
        (event,) = report.reported_persons[0].ip_events
        assert normalise_ip(event.ip) == event.ip, value
        assert tip_identifiers("t", report).ip_sightings == (IpSighting(f"ip:{event.ip}", T0),)
    assert taken >= 8
    for report in sample_reports():
        for ip in report.ip_addresses():
            assert normalise_ip(ip) == ip
