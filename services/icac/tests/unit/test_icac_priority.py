"""The priority score: each rule moves the result as the table in priority.py says, floors
lift and never lower, category 0 never raises, the rules are data; and jurisdiction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cpu_icac.domain.hash_sets import HashIndex, HashMatch, load_hash_set
from cpu_icac.domain.jurisdiction import IpLocation, assess_jurisdiction
from cpu_icac.domain.linking import SubjectLinker, tip_identifiers
from cpu_icac.domain.parsing import parse_tip_file
from cpu_icac.domain.priority import (
    DEFAULT_RULES,
    REASON_TEXTS,
    PriorityAssessment,
    PriorityRules,
    assess_priority,
)
from cpu_icac.domain.tip_report import TipReport, parse_tip_report

DATA = Path(__file__).parent / "data"  # copies of ../shared/data samples
NOW = datetime(2026, 10, 8, 6, 0, tzinfo=UTC)
MD5 = "0cc175b9c0f1b6a831c399e269772661"


def report(**fields: Any) -> TipReport:
    """A plain tip: CSAM, provider priority 3, no victims, no files, no time: 10 points, P3."""
    base: dict[str, Any] = {
        "provider": "ncmec",
        "report_id": "T-1",
        "incident_type": "child_sexual_abuse_material",
        "provider_priority": "3",
    }
    return parse_tip_report({**base, **fields})


def assess(tip: TipReport | None = None, **kwargs: Any) -> PriorityAssessment:
    return assess_priority(tip or report(), now=NOW, **kwargs)


def delta(tip: TipReport, **kwargs: Any) -> int:
    return assess(tip, **kwargs).score - assess().score


def test_the_baseline() -> None:
    base = assess()
    assert (base.level, base.score, base.floor) == ("P3", 10, None)
    assert base.reason_codes == ("incident_child_sexual_abuse_material", "provider_priority_3")
    assert base.reasons[0].text == "Child sexual abuse material (possession or distribution)."


@pytest.mark.parametrize(("priority", "points"), [("3", 0), ("2", 15), ("1", 30), ("E", 60)])
def test_provider_priority(priority: str, points: int) -> None:
    assert delta(report(provider_priority=priority)) == points
    assert (
        f"provider_priority_{priority}" in assess(report(provider_priority=priority)).reason_codes
    )


def test_exigent_is_always_p1() -> None:
    exigent = assess(report(provider_priority="E", annotations=["informational"]))
    assert exigent.score < DEFAULT_RULES.thresholds["P1"]
    assert (exigent.level, exigent.floor) == ("P1", "P1")


def test_no_provider_priority_counts_nothing() -> None:
    assert delta(report(provider_priority=None)) == 0


def test_incident_types_rank_contact_offences_above_possession() -> None:
    points = {
        t: assess(report(incident_type=t)).score
        for t in (
            "online_enticement",
            "child_sex_trafficking",
            "child_sexual_molestation",
            "child_sex_tourism",
            "child_sexual_abuse_material",
            "misleading_domain_name",
        )
    }
    assert points["online_enticement"] == points["child_sex_trafficking"] == 30
    assert points["child_sexual_molestation"] == points["child_sex_tourism"] == 25
    assert points["child_sexual_abuse_material"] == 10
    assert points["misleading_domain_name"] == 0
    assert assess(report(incident_type="misleading_domain_name")).level == "informational"


@pytest.mark.parametrize(
    ("annotation", "points", "level"),
    [
        ("sadistic_online_exploitation", 30, "P1"),  # floor
        ("sextortion", 25, "P3"),
        ("csam_solicitation", 10, "P3"),
        ("minor_to_minor_interaction", -10, "informational"),
        ("informational", -30, "informational"),
    ],
)
def test_annotations(annotation: str, points: int, level: str) -> None:
    result = assess(report(annotations=[annotation]))
    assert result.score - 10 == points
    assert result.level == level
    assert f"annotation_{annotation}" in result.reason_codes


def test_escalation_adds_points_and_lifts_to_p2() -> None:
    escalated = assess(report(escalation_reason="Meeting the child tonight."))
    assert escalated.score == 35
    assert (escalated.level, escalated.floor) == ("P2", "P2")
    assert escalated.reasons[0].code == "provider_escalation"


def test_a_floor_never_lowers() -> None:
    high = report(
        provider_priority="1",
        incident_type="online_enticement",
        escalation_reason="Now.",
        victims=[{"age_estimate": 4}],
    )
    result = assess(high)
    assert result.level == "P1" and result.floor is None


@pytest.mark.parametrize(
    ("ages", "points", "code"),
    [
        ([4], 25, "victim_age_0_5"),
        ([5], 25, "victim_age_0_5"),
        ([6], 15, "victim_age_6_12"),
        ([12], 15, "victim_age_6_12"),
        ([13], 5, "victim_age_13_17"),
        ([17], 5, "victim_age_13_17"),
        ([18], 0, None),
        ([None], 0, None),
    ],
)
def test_victim_age(ages: list[int | None], points: int, code: str | None) -> None:
    tip = report(victims=[{"age_estimate": a} for a in ages])
    assert delta(tip) == points
    if code:
        assert code in assess(tip).reason_codes


def test_the_youngest_victim_counts_and_several_victims_add() -> None:
    tip = report(victims=[{"age_estimate": 15}, {"age_estimate": 3}, {"age_estimate": None}])
    result = assess(tip)
    assert delta(tip) == 25 + 5
    assert {"victim_age_0_5", "multiple_victims"} <= set(result.reason_codes)


def match(category: int | None, file_index: int = 0, algorithm: Any = "md5") -> HashMatch:
    return HashMatch("national", algorithm, 0 if algorithm != "pdq" else 12, category, file_index)


FILE = {"md5": MD5, "viewed_by_provider": True, "publicly_available": False}


@pytest.mark.parametrize(
    ("categories", "points", "code"),
    [
        ([1], 10, "known_csam"),
        ([2], 5, "known_exploitive"),
        ([3], 5, "known_cgi"),
        ([4], 0, "known_comparison"),
        ([None], 0, "known_uncategorised"),
        ([0, 1], 10, "known_csam"),
        ([2, 1], 10, "known_csam"),
    ],
)
def test_hash_matches_by_category(categories: list[int | None], points: int, code: str) -> None:
    tip = report(files=[FILE] * len(categories))
    found = [match(c, i) for i, c in enumerate(categories)]
    result = assess(tip, hash_matches=found)
    assert result.score - assess(tip).score == points
    assert code in result.reason_codes


def test_a_pdq_match_counts_like_an_exact_one() -> None:
    tip = report(files=[FILE])
    assert assess(tip, hash_matches=[match(1, algorithm="pdq")]).score == 20


def test_category_0_never_raises_and_lowers_when_every_file_is_non_pertinent() -> None:
    two_files = report(files=[FILE, FILE])
    only_one = assess(two_files, hash_matches=[match(0, 0)])
    assert only_one.score == assess(two_files).score  # one file still unknown: no change
    both = assess(two_files, hash_matches=[match(0, 0), match(0, 1)])
    assert both.score - assess(two_files).score == -15
    assert "known_non_pertinent" in both.reason_codes
    generous = PriorityRules.model_validate(
        {"hash_categories": {"0": {"points": 50, "code": "oops"}}}
    )
    assert assess(two_files, hash_matches=[match(0, 0)], rules=generous).score == 10


def test_possible_new_material_only_when_sets_were_checked() -> None:
    tip = report(files=[FILE])
    assert delta(tip, hash_sets_checked=True) == 10
    assert "possible_new_material" in assess(tip, hash_sets_checked=True).reason_codes
    assert delta(tip) == 0  # not checked: nothing can be called new
    assert delta(tip, hash_sets_checked=True, hash_matches=[match(1)]) == 10  # known, not new
    public = report(files=[{**FILE, "publicly_available": True}])
    assert delta(public, hash_sets_checked=True) == 0
    enticement = report(incident_type="online_enticement", files=[FILE])
    assert assess(enticement, hash_sets_checked=True).score == 30


@pytest.mark.parametrize(
    ("ago", "points", "code"),
    [
        (timedelta(hours=-3), 15, "incident_last_72h"),  # clock skew: a future time is "now"
        (timedelta(hours=1), 15, "incident_last_72h"),
        (timedelta(hours=72), 15, "incident_last_72h"),
        (timedelta(hours=73), 5, "incident_last_30d"),
        (timedelta(days=30), 5, "incident_last_30d"),
        (timedelta(days=31), 0, None),
        (timedelta(days=366), -10, "incident_over_a_year_ago"),
    ],
)
def test_recency(ago: timedelta, points: int, code: str | None) -> None:
    tip = report(incident_at=(NOW - ago).isoformat())
    assert delta(tip) == points
    if code:
        assert code in assess(tip).reason_codes


def test_recency_falls_back_to_the_latest_ip_event() -> None:
    events = [
        {"ip": "203.0.113.1", "at": (NOW - timedelta(days=200)).isoformat()},
        {"ip": "203.0.113.1", "at": (NOW - timedelta(hours=5)).isoformat()},
    ]
    assert delta(report(reported_persons=[{"ip_events": events}])) == 15


@pytest.mark.parametrize(("size", "points"), [(1, 0), (2, 10), (4, 10), (5, 15), (40, 15)])
def test_cluster_size(size: int, points: int) -> None:
    assert delta(report(), cluster_size=size) == points


def test_no_jurisdiction_lowers() -> None:
    abroad = report(reported_persons=[{"ip_events": [{"ip": "192.0.2.10"}]}])
    jurisdiction = assess_jurisdiction(abroad, {"192.0.2.10": IpLocation("US")})
    result = assess(abroad, jurisdiction=jurisdiction)
    assert result.score - assess(abroad).score == -15
    assert "no_cambodian_indicator" in result.reason_codes


def test_thresholds() -> None:
    rules = DEFAULT_RULES.thresholds
    assert rules == {"P1": 80, "P2": 45, "P3": 10}
    p2 = report(provider_priority="1", incident_type="child_sex_trafficking")
    assert (assess(p2).score, assess(p2).level) == (60, "P2")
    younger = report(
        provider_priority="1", incident_type="child_sex_trafficking", victims=[{"age_estimate": 9}]
    )
    assert (assess(younger).score, assess(younger).level) == (75, "P2")
    assert (assess(younger, cluster_size=2).score, assess(younger, cluster_size=2).level) == (
        85,
        "P1",
    )
    assert (
        assess(report(provider_priority="1")).score,
        assess(report(provider_priority="1")).level,
    ) == (40, "P3")
    assert assess(report(incident_type="other")).level == "informational"


def test_rules_are_data() -> None:
    strict = PriorityRules.model_validate_json(
        '{"thresholds": {"P1": 200, "P2": 100, "P3": 50}, "incident_type": {"other": 99}}'
    )
    assert assess(report(), rules=strict).level == "informational"
    assert assess(report(incident_type="other"), rules=strict).score == 99
    assert assess(report(provider_priority="E"), rules=strict).level == "P1"  # floors kept
    with pytest.raises(ValueError, match="extra"):
        PriorityRules.model_validate({"unknown_rule": 1})


def test_reasons_come_largest_first_with_a_text_for_every_default_code() -> None:
    busy = report(
        provider_priority="2",
        incident_type="online_enticement",
        annotations=["sextortion", "minor_to_minor_interaction"],
        escalation_reason="Now.",
        incident_at=NOW.isoformat(),
        victims=[{"age_estimate": 8}, {"age_estimate": 9}],
        files=[FILE],
    )
    result = assess(busy, hash_matches=[match(1)], cluster_size=6, hash_sets_checked=True)
    assert [abs(r.points) for r in result.reasons] == sorted(
        (abs(r.points) for r in result.reasons), reverse=True
    )
    assert all(r.text != r.code for r in result.reasons)
    produced = {
        "provider_priority_E", "provider_priority_1", "provider_priority_2",
        "provider_priority_3", "provider_escalation", "multiple_victims",
        "possible_new_material", "incident_over_a_year_ago", "no_cambodian_indicator",
        *(f"incident_{t}" for t in DEFAULT_RULES.incident_type),
        *(f"annotation_{a}" for a in DEFAULT_RULES.annotations),
        *(b.code for b in DEFAULT_RULES.victim_age_bands),
        *(c.code for c in DEFAULT_RULES.hash_categories.values()),
        DEFAULT_RULES.uncategorised_match.code, DEFAULT_RULES.all_non_pertinent.code,
        *(b.code for b in DEFAULT_RULES.recency_bands),
        *(b.code for b in DEFAULT_RULES.cluster_bands),
    }  # fmt: skip
    assert produced <= set(REASON_TEXTS)


# --- the samples, end to end ---------------------------------------------------------------


def geolocate(address: str) -> IpLocation | None:
    """The test GeoIP of the sample README."""
    if address.startswith("203.0.113."):
        return IpLocation("KH", "12")
    if address.startswith("198.51.100."):
        return IpLocation("KH", "17")
    if address.startswith("192.0.2."):
        return IpLocation("US")
    return None


def test_sample_tips_triage() -> None:
    tips = []
    for name in ("sample-tips.jsonl", "sample-tips.xml", "sample-cmt-export.json"):
        tips += [i.report for i in parse_tip_file((DATA / name).read_bytes()) if i.report]
    index = HashIndex.of(
        [
            load_hash_set((DATA / "sample-vics.json").read_bytes(), name="project-vic"),
            load_hash_set((DATA / "sample-hashes.csv").read_bytes(), name="national"),
        ]
    )
    linker = SubjectLinker()
    for tip in tips:
        linker.add(tip_identifiers(tip.report_id, tip))
    outcome = {}
    for tip, found in zip(tips, index.match_reports(tips), strict=True):
        locations = {a: loc for a in tip.ip_addresses() if (loc := geolocate(a))}
        jurisdiction = assess_jurisdiction(tip, locations)
        result = assess_priority(
            tip,
            now=NOW,
            hash_matches=found,
            cluster_size=linker.cluster_of(tip.report_id).size,
            jurisdiction=jurisdiction,
            hash_sets_checked=True,
        )
        outcome[tip.report_id] = (result.level, result.score, jurisdiction.province_code)
    assert outcome == {
        # CSAM, priority 2, girl of 12, known file, 3 linked tips, 5 days ago
        "CT-2026-100000001": ("P2", 65, "12"),
        # enticement, priority 1, boy of 14, meeting planned in Siem Reap, linked
        "HSI-KH-2026-0193": ("P1", 80, "17"),
        # exigent viral file, only a US address: P1 by the floor, and no-jurisdiction
        "EV-88811": ("P1", 70, None),
        "100000002": ("P2", 75, "12"),
        # enticement, priority 1, sextortion, escalation, 13, within 72 h, linked
        "100000004": ("P1", 140, "17"),
        "100000005": ("P2", 45, "12"),
    }


# --- jurisdiction --------------------------------------------------------------------------


def person(**fields: Any) -> TipReport:
    return report(reported_persons=[fields])


def test_cambodian_ip_gives_jurisdiction_and_province() -> None:
    tip = person(ip_events=[{"ip": "203.0.113.5"}, {"ip": "198.51.100.5"}, {"ip": "203.0.113.6"}])
    found = assess_jurisdiction(
        tip,
        {
            "203.0.113.5": IpLocation("KH", "12"),
            "203.0.113.6": IpLocation("kh", "12"),
            "198.51.100.5": IpLocation("KH", "17"),
        },
    )
    assert not found.no_jurisdiction_candidate
    assert found.province_code == "12"
    assert found.home_indicators == ("ip_geolocated_home",)
    assert found.reason_codes == ()


def test_foreign_only_is_a_no_jurisdiction_candidate() -> None:
    tip = person(ip_events=[{"ip": "192.0.2.10"}], phones=["+14155550100"])
    found = assess_jurisdiction(tip, {"192.0.2.10": IpLocation("US")})
    assert found.no_jurisdiction_candidate
    assert found.foreign_countries == ("US",)
    assert found.reason_codes == ("no_cambodian_indicator",)


@pytest.mark.parametrize(
    ("fields", "indicator"),
    [
        ({"phones": ["+855 12 345 678"]}, "phone_home_country"),
        ({"emails": ["someone@moeys.gov.kh"]}, "email_home_domain"),
    ],
)
def test_other_cambodian_indicators(fields: dict[str, Any], indicator: str) -> None:
    tip = person(ip_events=[{"ip": "192.0.2.10"}], **fields)
    found = assess_jurisdiction(tip, {"192.0.2.10": IpLocation("US")})
    assert not found.no_jurisdiction_candidate
    assert found.home_indicators == (indicator,)


def test_nothing_known_is_a_candidate_too() -> None:
    found = assess_jurisdiction(person(ip_events=[{"ip": "203.0.113.9"}]), {})
    assert found.no_jurisdiction_candidate and found.province_code is None
