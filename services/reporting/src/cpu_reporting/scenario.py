"""A known set of events and the figures they must give: the reporting service's yardstick.

Used by the tests (through the real consumers and by the rebuild), by the dashboard's browser
test and by the benchmark's generator. Every id carries ``tag`` so runs on a shared broker do
not meet; every date is in ``year`` (and one case opened the year before), so a test reads its
own figures whatever else is on the topics.

The set includes the awkward deliveries: ``redelivered`` (the same message twice, and the same
arrest published twice under two event ids), ``out_of_order`` (an arrest before its case was
opened; evidence registered before the case.opened it belongs to), and ``rejected`` (events with
deny-listed fields, which must be dead-lettered and leave no trace).
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from cpu_shared.contracts import casework as cw
from cpu_shared.contracts import forensics as fo
from cpu_shared.contracts import icac, intake, new_envelope
from cpu_shared.contracts.base import EventData
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.topics import CASE_EVENTS, EVIDENCE_EVENTS, REFERRAL_EVENTS, TIP_EVENTS

#: Strings placed in deny-listed fields of the rejected events; none may reach the store.
PERSONAL_STRINGS = ("Sok Dara", "Chan Thida", "012 345 678", "Phum Prek Leap")


def at(day: date, hour: int = 3) -> datetime:
    """``hour`` UTC on ``day`` (03:00Z is 10:00 in Phnom Penh, the same day)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@dataclass
class Scenario:
    year: int
    tag: str
    # (topic, envelope) in the order they are produced.
    messages: list[tuple[str, EventEnvelope]] = field(default_factory=list)
    rejected: list[tuple[str, EventEnvelope]] = field(default_factory=list)
    _versions: dict[str, int] = field(default_factory=dict)

    def id(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def d(self, month: int, day: int) -> date:
        return date(self.year, month, day)

    def emit(self, data: EventData, aggregate: str, *, version: int | None = None) -> EventEnvelope:
        if version is None:
            version = self._versions.get(aggregate, 0) + 1
        self._versions[aggregate] = max(version, self._versions.get(aggregate, 0))
        envelope = new_envelope(
            data,
            source=data.topic.publisher,
            aggregate_id=aggregate,
            aggregate_version=version,
            correlation_id=uuid.uuid4().hex,
        )
        self.messages.append((data.topic.name, envelope))
        return envelope

    def reject(self, topic: str, event_type: str, aggregate: str, data: dict[str, Any]) -> None:
        envelope = EventEnvelope(
            event_type=event_type,
            event_version=1,
            source="tests",
            aggregate_id=aggregate,
            aggregate_version=99,
            correlation_id=uuid.uuid4().hex,
            data=data,
        )
        self.rejected.append((topic, envelope))
        self.messages.append((topic, envelope))

    @property
    def event_ids(self) -> set[str]:
        rejected = {str(e.event_id) for _, e in self.rejected}
        return {str(e.event_id) for _, e in self.messages} - rejected


def opened(
    s: Scenario,
    name: str,
    on: date,
    province: str,
    concerns: list[str],
    teams: list[str],
    *,
    referral_on: date | None,
    under_15: int = 1,
    children: tuple[str, ...] = (),
) -> cw.CaseOpened:
    return cw.CaseOpened(
        case_id=s.id(name),
        origin="referral" if referral_on else "tip",
        origin_id=s.id(f"origin-{name}"),
        opened_at=at(on),
        referral_received_at=at(referral_on) if referral_on else None,
        priority="P2",
        province_code=province,
        concerns=concerns,  # type: ignore[arg-type]
        teams=teams,  # type: ignore[arg-type]
        child_ids=[s.id(c) for c in children],
        children_under_15=under_15,
    )


def build(year: int, tag: str | None = None) -> Scenario:
    """The scenario for ``year``; :func:`expected` gives its figures."""
    s = Scenario(year=year, tag=tag or uuid.uuid4().hex[:10])
    c = s.id
    # Case 1 (Phnom Penh, rape, OVCS): arrest, charge, conviction (10 years), services, evidence.
    # Evidence first: it arrives before the case.opened it belongs to (out of order).
    s.emit(
        fo.EvidenceRegistered(
            item_id=c("item1"),
            case_id=c("case1"),
            item_type="clothing",
            collected_at=at(s.d(1, 11)),
            registered_at=at(s.d(1, 11)),
        ),
        c("item1"),
    )
    first = s.emit(
        opened(
            s,
            "case1",
            s.d(1, 10),
            "12",
            ["rape"],
            ["OVCS"],
            referral_on=s.d(1, 8),
            children=("child1",),
        ),
        c("case1"),
    )
    s.messages.append((CASE_EVENTS.name, first))  # redelivered: the very same message
    s.emit(
        cw.CaseSuspectArrested(
            case_id=c("case1"), suspect_id=c("sus1"), arrested_on=s.d(1, 20), province_code="12"
        ),
        c("case1"),
    )
    s.emit(
        cw.CaseCharged(
            case_id=c("case1"),
            suspect_id=c("sus1"),
            offence_codes=["CC-2009-art-239"],
            charged_on=s.d(2, 1),
        ),
        c("case1"),
    )
    s.emit(
        cw.CaseCourtOutcomeRecorded(
            case_id=c("case1"),
            suspect_id=c("sus1"),
            outcome="convicted",
            offence_codes=["CC-2009-art-239"],
            sentence_months=120,
            decided_on=s.d(6, 15),
        ),
        c("case1"),
    )
    for service, on in (("medical_care", s.d(1, 12)), ("legal_representation", s.d(1, 15))):
        s.emit(
            cw.CaseVictimServiceProvided(
                case_id=c("case1"),
                child_id=c("child1"),
                service=service,  # type: ignore[arg-type]
                provider_code="ngo_legal_aid",
                provided_on=on,
            ),
            c("case1"),
        )
    s.emit(
        fo.EvidenceAnalysisRequested(
            analysis_id=c("an1"),
            item_id=c("item1"),
            case_id=c("case1"),
            analysis_type="dna_profile",
            requested_at=at(s.d(1, 12)),
        ),
        c("item1"),
    )
    s.emit(
        fo.EvidenceAnalysisCompleted(
            analysis_id=c("an1"),
            item_id=c("item1"),
            case_id=c("case1"),
            analysis_type="dna_profile",
            result_code="profile_obtained",
            completed_at=at(s.d(1, 30)),
        ),
        c("item1"),
    )
    # Case 2 (Phnom Penh, homicide of a child under 15, HIT): two arrests, the first published
    # before case.opened (out of order) and again under a new event id (redelivered).
    arrest = cw.CaseSuspectArrested(
        case_id=c("case2"), suspect_id=c("sus2"), arrested_on=s.d(2, 10), province_code="12"
    )
    s.emit(arrest, c("case2"), version=2)
    s.emit(
        opened(s, "case2", s.d(2, 5), "12", ["homicide"], ["HIT"], referral_on=s.d(2, 3)),
        c("case2"),
        version=1,
    )
    s.emit(arrest, c("case2"), version=2)
    s.emit(
        cw.CaseSuspectArrested(
            case_id=c("case2"), suspect_id=c("sus3"), arrested_on=s.d(2, 10), province_code="12"
        ),
        c("case2"),
        version=3,
    )
    s.emit(
        cw.CaseCharged(
            case_id=c("case2"),
            suspect_id=c("sus2"),
            offence_codes=["CC-2009-art-199"],
            charged_on=s.d(2, 20),
        ),
        c("case2"),
        version=4,
    )
    # Case 3 (Siem Reap, trafficking, OVCS+HIT): no arrest; legal representation for two
    # children, one of them the child of case 1 (counted once among children).
    s.emit(
        opened(
            s, "case3", s.d(3, 1), "17", ["trafficking"], ["OVCS", "HIT"], referral_on=s.d(2, 27)
        ),
        c("case3"),
    )
    for child in ("child1", "child3"):
        s.emit(
            cw.CaseVictimServiceProvided(
                case_id=c("case3"),
                child_id=c(child),
                service="legal_representation",
                provider_code="ngo_legal_aid",
                provided_on=s.d(3, 5),
            ),
            c("case3"),
        )
    # Case 4 (Battambang, homicide, age unknown at opening): casework flags it on closing.
    s.emit(
        opened(
            s, "case4", s.d(3, 15), "02", ["homicide"], ["HIT"], referral_on=s.d(3, 14), under_15=0
        ),
        c("case4"),
    )
    s.emit(
        cw.CaseClosed(
            case_id=c("case4"),
            status="closed_transferred",
            closed_at=at(s.d(8, 1)),
            child_homicide=True,
        ),
        c("case4"),
    )
    # Case 5 (Phnom Penh, from a tip: no referral time): arrest, then acquittal.
    s.emit(
        opened(s, "case5", s.d(4, 1), "12", ["sexual_abuse"], ["OVCS"], referral_on=None),
        c("case5"),
    )
    s.emit(
        cw.CaseSuspectArrested(
            case_id=c("case5"), suspect_id=c("sus5"), arrested_on=s.d(4, 3), province_code="12"
        ),
        c("case5"),
    )
    s.emit(
        cw.CaseCourtOutcomeRecorded(
            case_id=c("case5"),
            suspect_id=c("sus5"),
            outcome="acquitted",
            decided_on=s.d(9, 1),
        ),
        c("case5"),
    )
    # Case 6: opened the year before; its arrest is this year's.
    s.emit(
        opened(
            s,
            "case6",
            date(year - 1, 12, 20),
            "12",
            ["rape"],
            ["OVCS"],
            referral_on=date(year - 1, 12, 18),
        ),
        c("case6"),
    )
    s.emit(
        cw.CaseSuspectArrested(
            case_id=c("case6"), suspect_id=c("sus6"), arrested_on=s.d(1, 5), province_code="12"
        ),
        c("case6"),
    )
    # Tips: received x3; one escalated, one closed actionable, one informational.
    for n, on in ((1, s.d(5, 1)), (2, s.d(5, 3)), (3, s.d(5, 4))):
        s.emit(
            icac.TipReceived(
                tip_id=c(f"tip{n}"),
                provider="ncmec",
                incident_type="child_sexual_abuse_material",
                received_at=at(on),
                country_code="KH",
                province_code="12",
            ),
            c(f"tip{n}"),
        )
    s.emit(
        icac.TipEscalated(
            tip_id=c("tip1"),
            priority="P1",
            incident_type="child_sexual_abuse_material",
            province_code="12",
            escalated_at=at(s.d(5, 2)),
        ),
        c("tip1"),
    )
    s.emit(
        icac.TipClosed(tip_id=c("tip2"), disposition="actionable", closed_at=at(s.d(5, 10))),
        c("tip2"),
    )
    s.emit(
        icac.TipClosed(tip_id=c("tip3"), disposition="informational", closed_at=at(s.d(5, 11))),
        c("tip3"),
    )
    # Referrals: two received.
    for n, on in ((1, s.d(1, 8)), (2, s.d(2, 3))):
        child = intake.ChildProfile(child_id=c(f"rchild{n}"), age_years=9, province_code="12")
        s.emit(
            intake.ReferralSubmitted(
                referral_id=c(f"ref{n}"),
                source="helpline_1288",
                received_at=at(on),
                concerns=["rape"],
                children=[child],
            ),
            c(f"ref{n}"),
        )
    # Rejected: personal data in the data, at the top and nested; never stored.
    s.reject(
        CASE_EVENTS.name,
        "case.victim_service_provided",
        c("case1"),
        {
            "case_id": c("case1"),
            "child_id": c("child1"),
            "service": "shelter",
            "provider_code": "ngo",
            "provided_on": s.d(1, 16).isoformat(),
            "child_name": PERSONAL_STRINGS[0],
        },
    )
    s.reject(
        REFERRAL_EVENTS.name,
        "referral.submitted",
        c("ref9"),
        {
            "referral_id": c("ref9"),
            "source": "helpline_1288",
            "received_at": at(s.d(1, 9)).isoformat(),
            "concerns": ["rape"],
            "children": [
                {
                    "child_id": c("rchild9"),
                    "province_code": "12",
                    "given_name": PERSONAL_STRINGS[1],
                    "phone": PERSONAL_STRINGS[2],
                }
            ],
        },
    )
    s.reject(
        TIP_EVENTS.name,
        "tip.received",
        c("tip9"),
        {
            "tip_id": c("tip9"),
            "provider": "ncmec",
            "incident_type": "other",
            "received_at": at(s.d(5, 5)).isoformat(),
            "reported_persons": {"address": PERSONAL_STRINGS[3]},
        },
    )
    s.reject(
        EVIDENCE_EVENTS.name,
        "evidence.registered",
        c("item9"),
        {
            "item_id": c("item9"),
            "case_id": c("case1"),
            "item_type": "document",
            "collected_at": at(s.d(1, 11)).isoformat(),
            "registered_at": at(s.d(1, 11)).isoformat(),
            "description": PERSONAL_STRINGS[0],
        },
    )
    return s


def expected(year: int) -> dict[str, Any]:
    """The unsuppressed figures of :func:`build` for the whole of ``year``."""
    return {
        "referrals": 2,
        "investigations": 5,
        "investigations_with_arrest": 3,
        "arrest_rate": 0.6,
        "arrests": 5,
        "charged": 2,
        "convictions": 1,
        "acquittals": 1,
        "sentence_years": 10.0,
        "child_homicides": 2,
        "children_legal_representation": 2,
        "victim_services": {
            "medical_care": 1,
            "psychological_counselling": 0,
            "legal_representation": 3,
            "shelter": 0,
            "family_support": 0,
            "partner_referral": 0,
        },
        "evidence_items": 1,
        "lab_analyses_requested": 1,
        "lab_analyses_completed": 1,
        "icac_tips_received": 3,
        "icac_tips_actioned": 2,
        "icac_tips_escalated": 1,
        # Case 1: 12 days (Jan 8 -> 20), case 2: 7 (Feb 3 -> 10), case 6: 18 (Dec 18 -> Jan 5).
        "median_days_referral_to_arrest": 12.0,
        "median_hours_referral_to_first_contact": None,
        # Case 1: 4 days (Jan 8 -> Jan 12), case 3: 6 days (Feb 27 -> Mar 5), 7 in a leap year
        # (the test picks its year at random).
        "median_days_referral_to_first_service": 5.5 if calendar.isleap(year) else 5.0,
        "by_province": {
            "12": {"investigations": 3, "arrests": 5, "investigations_with_arrest": 3},
            "17": {"investigations": 1, "arrests": 0, "investigations_with_arrest": 0},
            "02": {"investigations": 1, "arrests": 0, "investigations_with_arrest": 0},
        },
        "by_offence": {
            "CC-2009-art-239": {"investigations": 1, "charged": 1, "convictions": 1},
            "CC-2009-art-199": {"investigations": 1, "charged": 1, "convictions": 0},
            "none": {"investigations": 3, "charged": 0, "convictions": 0},
        },
    }
