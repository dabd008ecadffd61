"""A tip re-assessed for a grown cluster from its stored reasons is exactly what
``assess_priority`` gives with the new cluster size."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from cpu_icac.domain.hash_sets import HashIndex
from cpu_icac.domain.jurisdiction import IpLocation, assess_jurisdiction
from cpu_icac.domain.priority import (
    DEFAULT_RULES,
    PriorityRules,
    assess_priority,
    assessment_from_reasons,
    cluster_band,
    reassess_for_cluster,
)
from cpu_icac.domain.tip_report import parse_tip_report
from cpu_icac.synthetic import known_hash_set, synthetic_reports

NOW = datetime(2026, 10, 8, 12, 0, tzinfo=UTC)
KNOWN = known_hash_set(300, seed=3)
INDEX = HashIndex.of([KNOWN])
GEO = {
    **{f"203.0.113.{i}": IpLocation("KH", "12") for i in range(256)},
    **{f"198.51.100.{i}": IpLocation("KH", "17") for i in range(256)},
    **{f"192.0.2.{i}": IpLocation("US") for i in range(256)},
}
REPORTS = [parse_tip_report(r) for r in synthetic_reports(400, now=NOW, known=KNOWN.entries)]


def _assess(report, size, rules=DEFAULT_RULES):  # type: ignore[no-untyped-def]
    return assess_priority(
        report,
        now=NOW,
        hash_matches=INDEX.match_report(report),
        cluster_size=size,
        jurisdiction=assess_jurisdiction(report, GEO),
        hash_sets_checked=True,
        rules=rules,
    )


@pytest.mark.parametrize("sizes", [(1, 2), (1, 5), (2, 5), (4, 5), (1, 1), (5, 9), (3, 1)])
def test_reassessment_equals_a_fresh_assessment(sizes: tuple[int, int]) -> None:
    before, after = sizes
    for report in REPORTS:
        stored = _assess(report, before)
        expected = _assess(report, after)
        got = reassess_for_cluster(stored, after)
        assert got == expected, report.report_id


def test_reassessment_from_stored_reason_codes_and_points_only() -> None:
    levels = set()
    for report in REPORTS:
        stored = _assess(report, 1)
        reasons = [(r.code, r.points) for r in stored.reasons]
        rebuilt = assessment_from_reasons(reasons)
        assert rebuilt == stored
        assert reassess_for_cluster(rebuilt, 7) == _assess(report, 7)
        levels.add(stored.level)
    assert levels == {"P1", "P2", "P3", "informational"}


def test_reassessment_follows_the_units_own_rules() -> None:
    rules = PriorityRules(
        thresholds={"P1": 60, "P2": 30, "P3": 5},
        cluster_bands=(
            {"min_size": 3, "points": 40, "code": "cluster_3_plus"},  # type: ignore[list-item]
        ),
        escalation_floor="P1",
    )
    rng = random.Random(4)
    for report in rng.sample(REPORTS, 100):
        for before, after in ((1, 3), (3, 1), (2, 4)):
            stored = _assess(report, before, rules)
            assert reassess_for_cluster(stored, after, rules=rules) == _assess(report, after, rules)


def test_cluster_bands() -> None:
    assert [cluster_band(n) for n in (1, 2, 4, 5, 50)] == [
        None,
        "linked_tips",
        "linked_tips",
        "cluster_5_plus",
        "cluster_5_plus",
    ]


def test_stored_reasons_are_compact_json_of_codes_and_points() -> None:
    import json

    from cpu_icac.domain.priority import PriorityAssessment, PriorityReason
    from cpu_icac.service_layer.ingest import _reasons_json

    for report in REPORTS:
        stored = _assess(report, 3)
        expected = json.dumps([[r.code, r.points] for r in stored.reasons], separators=(",", ":"))
        assert _reasons_json(stored) == expected
        assert assessment_from_reasons(json.loads(_reasons_json(stored))) == stored
    odd = PriorityAssessment(
        "P3", -3, (PriorityReason('a"b\\ឈ\n', -3, "t"), PriorityReason("x", 0, "t"))
    )
    assert _reasons_json(odd) == json.dumps([['a"b\\ឈ\n', -3], ["x", 0]], separators=(",", ":"))
    assert _reasons_json(PriorityAssessment("P3", 0, ())) == "[]"
