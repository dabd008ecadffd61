"""The analyst workflow: queue order, one claimant at a time, disposition rules, and what an
escalation hands to casework."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cpu_icac.domain.parsing import parse_tip_file
from cpu_icac.domain.priority import PriorityLevel, assess_priority
from cpu_icac.domain.tip_report import TipReport, parse_tip_report
from cpu_icac.domain.workflow import (
    EscalationSummary,
    TipClosed,
    TipEscalated,
    TipTriage,
    WorkflowError,
    claim,
    dispose,
    next_tip,
    release,
    reprioritise,
    triage_queue,
)

DATA = Path(__file__).parent / "data"  # copies of ../shared/data samples
T0 = datetime(2026, 10, 8, 6, 0, tzinfo=UTC)


def plain_report() -> TipReport:
    return parse_tip_report(
        {"provider": "ncmec", "report_id": "R-1", "incident_type": "online_enticement"}
    )


def triaged(tip_id: str, priority: PriorityLevel, minutes_ago: int = 0) -> TipTriage:
    return TipTriage.new(
        tip_id=tip_id,
        report=plain_report(),
        priority=priority,
        received_at=T0 - timedelta(minutes=minutes_ago),
    )


@contextmanager
def refused(rule: str) -> Iterator[None]:
    """Expect a WorkflowError naming ``rule``."""
    with pytest.raises(WorkflowError) as caught:
        yield
    assert caught.value.rule == rule


def test_queue_by_priority_then_age() -> None:
    tips = [
        triaged("p3-old", "P3", minutes_ago=500),
        triaged("p1-new", "P1", minutes_ago=1),
        triaged("info", "informational", minutes_ago=900),
        triaged("p1-old", "P1", minutes_ago=60),
        triaged("p2", "P2", minutes_ago=5),
        triaged("p1-old-b", "P1", minutes_ago=60),
    ]
    closed, _ = dispose(
        claim(triaged("p1-closed", "P1", 999), analyst="a", now=T0),
        analyst="a",
        disposition="informational",
        now=T0,
    )
    order = [t.tip_id for t in triage_queue([*tips, closed])]
    assert order == ["p1-old", "p1-old-b", "p1-new", "p2", "p3-old", "info"]


def test_one_analyst_at_a_time() -> None:
    tip = claim(triaged("t", "P1"), analyst="dara", now=T0)
    assert (tip.status, tip.claimed_by, tip.claimed_at) == ("claimed", "dara", T0)
    with refused("tip_claimed"):
        claim(tip, analyst="sophea", now=T0 + timedelta(minutes=5))
    renewed = claim(tip, analyst="dara", now=T0 + timedelta(hours=1))
    assert renewed.claimed_at == T0 + timedelta(hours=1)


def test_an_expired_claim_can_be_taken() -> None:
    tip = claim(triaged("t", "P1"), analyst="dara", now=T0)
    later = T0 + timedelta(hours=8)
    taken = claim(tip, analyst="sophea", now=later)
    assert taken.claimed_by == "sophea"
    with refused("tip_claimed"):
        claim(tip, analyst="sophea", now=later, claim_ttl=timedelta(hours=9))


def test_next_tip_skips_live_claims() -> None:
    first = claim(triaged("first", "P1", 10), analyst="dara", now=T0)
    second = triaged("second", "P2", 5)
    assert next_tip([first, second], now=T0) == second
    assert next_tip([first, second], now=T0 + timedelta(hours=9)) == first
    assert next_tip([first], now=T0) is None


def test_release() -> None:
    tip = claim(triaged("t", "P1"), analyst="dara", now=T0)
    with refused("not_the_claimant"):
        release(tip, analyst="sophea")
    assert release(tip, analyst="sophea", force=True).status == "queued"
    back = release(tip, analyst="dara")
    assert (back.status, back.claimed_by) == ("queued", None)
    with refused("tip_not_claimed"):
        release(back, analyst="dara")


def test_only_the_claimant_disposes_and_only_once() -> None:
    queued = triaged("t", "P2")
    with refused("tip_not_claimed"):
        dispose(queued, analyst="dara", disposition="actionable", now=T0)
    tip = claim(queued, analyst="dara", now=T0)
    with refused("not_the_claimant"):
        dispose(tip, analyst="sophea", disposition="actionable", now=T0)
    with refused("unknown_disposition"):
        dispose(tip, analyst="dara", disposition="ignore", now=T0)
    done, event = dispose(tip, analyst="dara", disposition="actionable", now=T0)
    assert (done.status, done.disposition, done.disposed_by, done.disposed_at) == (
        "closed",
        "actionable",
        "dara",
        T0,
    )
    assert event == TipClosed("t", "actionable", "P2", T0)
    assert event.as_event_data() == {
        "tip_id": "t",
        "disposition": "actionable",
        "priority": "P2",
        "duplicate_of": None,
    }
    for action in (
        lambda: dispose(done, analyst="dara", disposition="escalate", now=T0),
        lambda: claim(done, analyst="dara", now=T0),
        lambda: release(done, analyst="dara"),
        lambda: reprioritise(done, "P1"),
    ):
        with refused("tip_disposed"):
            action()


def test_an_expired_claimant_may_still_dispose_while_nobody_took_the_tip() -> None:
    tip = claim(triaged("t", "P2"), analyst="dara", now=T0)
    done, _ = dispose(tip, analyst="dara", disposition="informational", now=T0 + timedelta(days=1))
    assert done.status == "closed"


@pytest.mark.parametrize("disposition", ["informational", "no_jurisdiction"])
def test_closing_dispositions(disposition: str) -> None:
    tip = claim(triaged("t", "P3"), analyst="dara", now=T0)
    done, event = dispose(tip, analyst="dara", disposition=disposition, now=T0)
    assert done.status == "closed" and isinstance(event, TipClosed)
    assert event.disposition == disposition


def test_a_duplicate_names_its_original() -> None:
    tip = claim(triaged("t2", "P2"), analyst="dara", now=T0)
    with refused("duplicate_needs_original"):
        dispose(tip, analyst="dara", disposition="duplicate", now=T0)
    with refused("duplicate_needs_original"):
        dispose(tip, analyst="dara", disposition="duplicate", now=T0, duplicate_of="t2")
    with refused("original_only_for_duplicate"):
        dispose(tip, analyst="dara", disposition="actionable", now=T0, duplicate_of="t1")
    done, event = dispose(tip, analyst="dara", disposition="duplicate", now=T0, duplicate_of="t1")
    assert done.duplicate_of == "t1"
    assert isinstance(event, TipClosed) and event.duplicate_of == "t1"


def test_escalation_hands_casework_what_it_needs_and_no_personal_data() -> None:
    (item,) = [i for i in parse_tip_file((DATA / "sample-tips.xml").read_bytes()) if i.ok][1:]
    report = item.report
    assert report is not None
    priority = assess_priority(report, now=T0)
    tip = TipTriage.new(
        tip_id="tip-0001",
        report=report,
        priority=priority,
        received_at=T0,
        cluster_id="tip-0000",
        province_code="17",
    )
    done, event = dispose(
        claim(tip, analyst="dara", now=T0), analyst="dara", disposition="escalate", now=T0
    )
    assert done.status == "escalated"
    assert isinstance(event, TipEscalated)
    assert event.summary == EscalationSummary(
        tip_id="tip-0001",
        priority="P1",
        incident_type="online_enticement",
        province_code="17",
        cluster_id="tip-0000",
        victim_count=1,
        youngest_victim_age=13,
    )
    data = event.summary.as_event_data()
    assert set(data) == {
        "tip_id",
        "priority",
        "incident_type",
        "province_code",
        "cluster_id",
        "victim_count",
        "youngest_victim_age",
    }
    text = repr(data)
    for personal in ("teacher_sr", "198.51.100.23", "trust-safety", "dara", "meet in person"):
        assert personal not in text


def test_reprioritise_an_open_tip() -> None:
    tip = triaged("t", "P3")
    moved = reprioritise(tip, "P1", cluster_id="c-1")
    assert (moved.priority, moved.cluster_id) == ("P1", "c-1")
    assert triaged("t", "P3").cluster_id == "t"  # a tip alone is its own cluster
