"""A tip's priority: P1, P2, P3 or informational, with the reasons that made it.

The score is a sum of points, each rule adding its own reason code; the level comes from
thresholds, then floors lift it (a floor never lowers). The rules are data,
:class:`PriorityRules`, which the unit can change (or load from JSON with
``PriorityRules.model_validate_json``) without touching code. The defaults:

====================================  ======  =============================================
rule (reason code)                    points  note
====================================  ======  =============================================
provider_priority_E                     +60   exigent: floor P1
provider_priority_1 / _2 / _3           +30 / +15 / 0
incident_online_enticement              +30   contact offences rank above possession
incident_child_sex_trafficking          +30
incident_child_sexual_molestation       +25   hands-on abuse: production
incident_child_sex_tourism              +25
incident_child_sexual_abuse_material    +10   possession and distribution
incident_unsolicited_obscene_material   +10   (``..._to_child``)
incident_misleading_* / other             0
annotation_sadistic_online_exploitation +30   floor P1
annotation_sextortion                   +25
annotation_csam_solicitation            +10
annotation_minor_to_minor_interaction   -10
annotation_informational                -30
provider_escalation                     +25   the provider asked for urgency: floor P2
victim_age_0_5 / _6_12 / _13_17       +25 / +15 / +5   youngest victim's estimated age
multiple_victims                         +5   more than one victim
known_csam (category 1)                 +10   the best-ranked match counts once
known_cgi (3) / known_exploitive (2)     +5 / +5
known_comparison (4)                      0
known_non_pertinent (0)                 -15   only when EVERY file matched category 0:
                                              category 0 never raises a priority
possible_new_material                   +10   a file the provider viewed, not public,
                                              matching no known set (possible production;
                                              only when hash sets were checked)
incident_last_72h / _last_30d           +15 / +5   from incident_at, else the latest IP event
incident_over_a_year_ago                -10
linked_tips / cluster_5_plus            +10 / +15   the subject cluster's size (2+, 5+)
no_cambodian_indicator                  -15   see jurisdiction.py
====================================  ======  =============================================

Levels: P1 from 80 points, P2 from 45, P3 from 10, informational below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from cpu_icac.domain.hash_sets import NON_PERTINENT, HashMatch
from cpu_icac.domain.jurisdiction import NO_JURISDICTION, JurisdictionAssessment
from cpu_icac.domain.tip_report import TipReport

PriorityLevel = Literal["P1", "P2", "P3", "informational"]
LEVEL_ORDER: Final[tuple[PriorityLevel, ...]] = ("P1", "P2", "P3", "informational")
LEVEL_RANK: Final[dict[str, int]] = {level: rank for rank, level in enumerate(LEVEL_ORDER)}

REASON_TEXTS: Final[dict[str, str]] = {
    "provider_priority_E": (
        "The provider marked the report exigent (E): a child may be in danger now."
    ),
    "provider_priority_1": "Provider priority 1.",
    "provider_priority_2": "Provider priority 2.",
    "provider_priority_3": "Provider priority 3.",
    "incident_online_enticement": "Online enticement: an adult seeking contact with a child.",
    "incident_child_sex_trafficking": "Child sex trafficking.",
    "incident_child_sexual_molestation": "Hands-on sexual abuse of a child (production).",
    "incident_child_sex_tourism": "Child sex tourism.",
    "incident_child_sexual_abuse_material": (
        "Child sexual abuse material (possession or distribution)."
    ),
    "incident_unsolicited_obscene_material_to_child": "Obscene material sent to a child.",
    "incident_misleading_domain_name": "Misleading domain name.",
    "incident_misleading_content": "Misleading words or images on the internet.",
    "incident_other": "Other incident type.",
    "annotation_sadistic_online_exploitation": (
        "Sadistic online exploitation: a child in imminent danger."
    ),
    "annotation_sextortion": "Sextortion: a child being coerced now.",
    "annotation_csam_solicitation": "Solicitation of abuse material.",
    "annotation_minor_to_minor_interaction": "Interaction between minors.",
    "annotation_informational": "The provider marked the report informational.",
    "provider_escalation": "The provider asked for urgent handling.",
    "victim_age_0_5": "A victim estimated 5 or younger.",
    "victim_age_6_12": "A victim estimated between 6 and 12.",
    "victim_age_13_17": "A victim estimated between 13 and 17.",
    "multiple_victims": "More than one victim.",
    "known_csam": "A file matches known child abuse material.",
    "known_exploitive": "A file matches known child-exploitive material.",
    "known_cgi": "A file matches known computer-generated abuse material.",
    "known_comparison": "A file matches a comparison image.",
    "known_non_pertinent": "Every file matches known non-pertinent material.",
    "known_uncategorised": "A file matches a known list without a category.",
    "possible_new_material": (
        "A file the provider viewed matches no known list: possibly new material."
    ),
    "incident_last_72h": "The incident was in the last 72 hours.",
    "incident_last_30d": "The incident was in the last 30 days.",
    "incident_over_a_year_ago": "The incident was more than a year ago.",
    "linked_tips": "Linked to other tips about the same subject.",
    "cluster_5_plus": "Linked to four or more other tips about the same subject.",
    NO_JURISDICTION: "No Cambodian indicator: possibly for another country.",
}


class AgeBand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_age: int
    points: int
    code: str


class CategoryRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    points: int
    code: str


class RecencyBand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    within_hours: float
    points: int
    code: str


class ClusterBand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    min_size: int
    points: int
    code: str


class PriorityRules(BaseModel):
    """Every weight and threshold of the score. Bands are tried in order; the first that
    applies counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    thresholds: dict[Literal["P1", "P2", "P3"], int] = {"P1": 80, "P2": 45, "P3": 10}
    provider_priority: dict[str, int] = {"E": 60, "1": 30, "2": 15, "3": 0}
    provider_priority_floor: dict[str, PriorityLevel] = {"E": "P1"}
    incident_type: dict[str, int] = {
        "online_enticement": 30,
        "child_sex_trafficking": 30,
        "child_sexual_molestation": 25,
        "child_sex_tourism": 25,
        "child_sexual_abuse_material": 10,
        "unsolicited_obscene_material_to_child": 10,
        "misleading_domain_name": 0,
        "misleading_content": 0,
        "other": 0,
    }
    annotations: dict[str, int] = {
        "sadistic_online_exploitation": 30,
        "sextortion": 25,
        "csam_solicitation": 10,
        "minor_to_minor_interaction": -10,
        "informational": -30,
    }
    annotation_floor: dict[str, PriorityLevel] = {"sadistic_online_exploitation": "P1"}
    escalation_points: int = 25
    escalation_floor: PriorityLevel | None = "P2"
    victim_age_bands: tuple[AgeBand, ...] = (
        AgeBand(max_age=5, points=25, code="victim_age_0_5"),
        AgeBand(max_age=12, points=15, code="victim_age_6_12"),
        AgeBand(max_age=17, points=5, code="victim_age_13_17"),
    )
    multiple_victims_points: int = 5
    hash_categories: dict[int, CategoryRule] = {
        1: CategoryRule(points=10, code="known_csam"),
        2: CategoryRule(points=5, code="known_exploitive"),
        3: CategoryRule(points=5, code="known_cgi"),
        4: CategoryRule(points=0, code="known_comparison"),
    }
    uncategorised_match: CategoryRule = CategoryRule(points=0, code="known_uncategorised")
    all_non_pertinent: CategoryRule = CategoryRule(points=-15, code="known_non_pertinent")
    possible_new_material_points: int = 10
    new_material_incident_types: frozenset[str] = frozenset(
        {"child_sexual_abuse_material", "child_sexual_molestation"}
    )
    recency_bands: tuple[RecencyBand, ...] = (
        RecencyBand(within_hours=72, points=15, code="incident_last_72h"),
        RecencyBand(within_hours=24 * 30, points=5, code="incident_last_30d"),
    )
    stale_after_days: int = 365
    stale_points: int = -10
    cluster_bands: tuple[ClusterBand, ...] = (
        ClusterBand(min_size=5, points=15, code="cluster_5_plus"),
        ClusterBand(min_size=2, points=10, code="linked_tips"),
    )
    no_jurisdiction_points: int = Field(default=-15)


DEFAULT_RULES: Final = PriorityRules()


class PriorityReason(NamedTuple):
    """One rule that counted: its code, its points, and a sentence for the analyst."""

    code: str
    points: int
    text: str


@dataclass(frozen=True, slots=True)
class PriorityAssessment:
    """The level, the score behind it, the floor that lifted it (if any), and the reasons,
    largest effect first."""

    level: PriorityLevel
    score: int
    reasons: tuple[PriorityReason, ...]
    floor: PriorityLevel | None = None

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(r.code for r in self.reasons)


def _level_for(score: int, thresholds: dict[Literal["P1", "P2", "P3"], int]) -> PriorityLevel:
    for level in ("P1", "P2", "P3"):
        if score >= thresholds[level]:  # type: ignore[index]
            return level  # type: ignore[return-value]
    return "informational"


def _latest_time(report: TipReport) -> datetime | None:
    if report.incident_at is not None:
        return report.incident_at
    times = [e.at for p in report.reported_persons for e in p.ip_events if e.at is not None]
    return max(times) if times else None


def assess_priority(
    report: TipReport,
    *,
    now: datetime,
    hash_matches: Sequence[HashMatch] = (),
    cluster_size: int = 1,
    jurisdiction: JurisdictionAssessment | None = None,
    hash_sets_checked: bool = False,
    rules: PriorityRules = DEFAULT_RULES,
) -> PriorityAssessment:
    """Score a report. ``now`` must be timezone-aware. ``hash_sets_checked`` says the files
    were matched against at least one set (only then can a file be "possibly new")."""
    found: list[tuple[str, int]] = []
    floors: list[PriorityLevel] = []

    priority = report.provider_priority
    if priority is not None and priority in rules.provider_priority:
        found.append((f"provider_priority_{priority}", rules.provider_priority[priority]))
        if priority in rules.provider_priority_floor:
            floors.append(rules.provider_priority_floor[priority])

    found.append(
        (f"incident_{report.incident_type}", rules.incident_type.get(report.incident_type, 0))
    )

    for annotation in report.annotations:
        found.append((f"annotation_{annotation}", rules.annotations.get(annotation, 0)))
        if annotation in rules.annotation_floor:
            floors.append(rules.annotation_floor[annotation])

    if report.escalation_reason:
        found.append(("provider_escalation", rules.escalation_points))
        if rules.escalation_floor is not None:
            floors.append(rules.escalation_floor)

    youngest = report.youngest_victim_age()
    if youngest is not None:
        for band in rules.victim_age_bands:
            if youngest <= band.max_age:
                found.append((band.code, band.points))
                break
    if len(report.victims) > 1:
        found.append(("multiple_victims", rules.multiple_victims_points))

    if hash_matches:
        categories = {m.category for m in hash_matches}
        # Category 0 (non-pertinent) never raises a priority, whatever the table says.
        ranked = [
            rules.hash_categories[c]
            for c in categories
            if c in rules.hash_categories and c != NON_PERTINENT
        ]
        if ranked:
            best = max(ranked, key=lambda rule: rule.points)
            found.append((best.code, best.points))
        elif None in categories:
            found.append((rules.uncategorised_match.code, rules.uncategorised_match.points))
        matched_files = {m.file_index for m in hash_matches}
        if categories == {NON_PERTINENT} and len(matched_files) == len(report.files):
            found.append((rules.all_non_pertinent.code, rules.all_non_pertinent.points))
    if hash_sets_checked and report.incident_type in rules.new_material_incident_types:
        matched = {m.file_index for m in hash_matches}
        if any(
            f.viewed_by_provider and not f.publicly_available and i not in matched
            for i, f in enumerate(report.files)
        ):
            found.append(("possible_new_material", rules.possible_new_material_points))

    when = _latest_time(report)
    if when is not None:
        hours = max((now - when).total_seconds(), 0.0) / 3600
        for recency in rules.recency_bands:
            if hours <= recency.within_hours:
                found.append((recency.code, recency.points))
                break
        else:
            if hours > rules.stale_after_days * 24:
                found.append(("incident_over_a_year_ago", rules.stale_points))

    for cluster in rules.cluster_bands:
        if cluster_size >= cluster.min_size:
            found.append((cluster.code, cluster.points))
            break

    if jurisdiction is not None and jurisdiction.no_jurisdiction_candidate:
        found.append((NO_JURISDICTION, rules.no_jurisdiction_points))

    score = sum(points for _, points in found)
    level = _level_for(score, rules.thresholds)
    lifted_to: PriorityLevel | None = None
    for floor in floors:
        if LEVEL_RANK[floor] < LEVEL_RANK[level]:
            level = floor
            lifted_to = floor
    reasons = tuple(
        PriorityReason(code, points, REASON_TEXTS.get(code, code))
        for code, points in sorted(found, key=lambda item: -abs(item[1]))
    )
    return PriorityAssessment(level=level, score=score, reasons=reasons, floor=lifted_to)


# --- a grown cluster -------------------------------------------------------------------------


# Stages already worked out, per rules object (kept here, so its id is not reused).
_STAGES: dict[int, tuple[PriorityRules, dict[str, int]]] = {}


def _stage(code: str, rules: PriorityRules) -> int:
    """Where :func:`assess_priority` adds a reason of this code (its insertion order), so
    that reasons of equal weight keep the order a fresh assessment gives them."""
    entry = _STAGES.get(id(rules))
    if entry is None or entry[0] is not rules:
        if len(_STAGES) > 64:
            _STAGES.clear()
        entry = _STAGES[id(rules)] = (rules, {})
    known = entry[1]
    stage = known.get(code)
    if stage is None:
        stage = known[code] = _stage_of(code, rules)
    return stage


def _stage_of(code: str, rules: PriorityRules) -> int:
    recency = {band.code for band in rules.recency_bands} | _RECENCY_CODES
    if code.startswith("provider_priority_"):
        return 0
    if code.startswith("incident_") and code not in recency:
        return 1
    if code.startswith("annotation_"):
        return 2
    if code == "provider_escalation":
        return 3
    if code in {band.code for band in rules.victim_age_bands}:
        return 4
    if code == "multiple_victims":
        return 5
    if code in {r.code for r in rules.hash_categories.values()} or (
        code == rules.uncategorised_match.code
    ):
        return 6
    if code == rules.all_non_pertinent.code:
        return 7
    if code == "possible_new_material":
        return 8
    if code in recency:
        return 9
    if code in {band.code for band in rules.cluster_bands}:
        return 10
    return 11  # no_cambodian_indicator, the last rule


_RECENCY_CODES: Final = frozenset(
    {"incident_last_72h", "incident_last_30d", "incident_over_a_year_ago"}
)


def _floors_of(codes: Sequence[str], rules: PriorityRules) -> list[PriorityLevel]:
    floors: list[PriorityLevel] = []
    for code in codes:
        if code.startswith("provider_priority_"):
            floor = rules.provider_priority_floor.get(code.removeprefix("provider_priority_"))
        elif code.startswith("annotation_"):
            floor = rules.annotation_floor.get(code.removeprefix("annotation_"))
        elif code == "provider_escalation":
            floor = rules.escalation_floor
        else:
            floor = None
        if floor is not None:
            floors.append(floor)
    return floors


def cluster_band(cluster_size: int, rules: PriorityRules = DEFAULT_RULES) -> str | None:
    """The code of the cluster band a cluster of this size falls in (None: no band)."""
    for cluster in rules.cluster_bands:
        if cluster_size >= cluster.min_size:
            return cluster.code
    return None


def reassess_for_cluster(
    assessment: PriorityAssessment,
    cluster_size: int,
    *,
    rules: PriorityRules = DEFAULT_RULES,
) -> PriorityAssessment:
    """The assessment a tip would get if its subject cluster had ``cluster_size`` tips, every
    other fact as when it was assessed: its cluster reason replaced, score, level and floors
    recomputed. Equal to :func:`assess_priority` with the new size (tested), but needs only the
    stored reasons, not the report: for the earlier tips of a cluster that grows."""
    band_codes = {band.code for band in rules.cluster_bands}
    found = [(r.code, r.points) for r in assessment.reasons if r.code not in band_codes]
    for cluster in rules.cluster_bands:
        if cluster_size >= cluster.min_size:
            found.append((cluster.code, cluster.points))
            break
    score = sum(points for _, points in found)
    level = _level_for(score, rules.thresholds)
    lifted_to: PriorityLevel | None = None
    for floor in _floors_of([code for code, _ in found], rules):
        if LEVEL_RANK[floor] < LEVEL_RANK[level]:
            level = floor
            lifted_to = floor
    ordered = sorted(found, key=lambda item: (-abs(item[1]), _stage(item[0], rules)))
    reasons = tuple(
        PriorityReason(code, points, REASON_TEXTS.get(code, code)) for code, points in ordered
    )
    return PriorityAssessment(level=level, score=score, reasons=reasons, floor=lifted_to)


def assessment_from_reasons(
    reasons: Sequence[tuple[str, int]], *, rules: PriorityRules = DEFAULT_RULES
) -> PriorityAssessment:
    """A stored assessment (its reason codes and points, as kept with a tip) made whole again:
    score, level and floor follow from the reasons under ``rules``."""
    score = sum(points for _, points in reasons)
    level = _level_for(score, rules.thresholds)
    lifted_to: PriorityLevel | None = None
    for floor in _floors_of([code for code, _ in reasons], rules):
        if LEVEL_RANK[floor] < LEVEL_RANK[level]:
            level = floor
            lifted_to = floor
    return PriorityAssessment(
        level=level,
        score=score,
        reasons=tuple(
            PriorityReason(code, points, REASON_TEXTS.get(code, code)) for code, points in reasons
        ),
        floor=lifted_to,
    )
