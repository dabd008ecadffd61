"""Opening cases from referral and tip events, same-child linking, evidence, on PostgreSQL.

Events go through the service's own consumer (inbox included); effects are read back from
the store and from the outbox the relay would publish.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from cpu_casework.service_layer import events as handlers
from cpu_shared.contracts import EVENT_CATALOGUE, PERSONAL_FIELD_DENYLIST
from cpu_shared.contracts.casework import CaseOpened
from cpu_shared.contracts.forensics import (
    EvidenceAnalysisCompleted,
    EvidenceCustodyTransferred,
    EvidenceRegistered,
)
from cpu_shared.contracts.icac import TipEscalated, TipTriaged
from cpu_shared.contracts.intake import ReferralSubmitted, ReferralTriaged
from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.security.pseudonym import PSEUDONYM_PATTERN

pytestmark = pytest.mark.integration


async def test_a_triaged_referral_opens_one_assigned_case_with_first_contact_deadlines(
    casework,
) -> None:
    _, referral = casework.referral_id()
    child = casework.child_id()
    await casework.deliver_referral(
        casework.triaged(referral, children=[(child, 9)], priority="P1", teams=["OVCS"])
    )

    case_id = await casework.case_id_of(referral)
    row = (await casework.rows("SELECT status, lead_team, priority FROM cases"))[0]
    assert tuple(row) == ("open", "OVCS", "P1")
    task = (
        await casework.rows(
            "SELECT child_id, team, status, due_at - received_at FROM case_first_contact_tasks"
        )
    )[0]
    assert tuple(task) == (child, "OVCS", "open", timedelta(hours=24))

    events = await casework.outbox()
    assert [e.event_type for e in events] == ["case.opened", "case.assigned"]
    pseudonym = casework.cw.case_pseudonym(case_id)
    assert {e.aggregate_id for e in events} == {pseudonym}
    assert [e.aggregate_version for e in events] == [1, 2]
    opened = CaseOpened.model_validate(events[0].data)
    assert opened.origin_id == referral and opened.child_ids == [child]
    assert opened.children_under_15 == 1 and opened.teams == ["OVCS"]
    assert events[1].data["team"] == "OVCS" and events[1].data["investigator_id"] is None


async def test_a_child_homicide_is_opened_and_led_by_hit(casework) -> None:
    _, referral = casework.referral_id()
    await casework.deliver_referral(
        casework.triaged(
            referral,
            children=[(casework.child_id(), 11)],
            concerns=["homicide"],
            teams=["HIT", "OVCS"],
            priority="P1",
        )
    )
    row = (await casework.rows("SELECT lead_team, child_homicide, teams FROM cases"))[0]
    assert row[0] == "HIT" and row[1] is True and set(row[2]) == {"HIT", "OVCS"}


async def test_redelivery_and_republication_open_nothing_twice(casework) -> None:
    _, referral = casework.referral_id()
    first = casework.triaged(referral)
    await casework.deliver_referral(first)
    await casework.deliver_referral(first)  # the same event again: the inbox drops it
    # The same referral published again under a new event id (a producer's retry after a
    # crash, a redrive): the natural key drops it.
    again = casework.triaged(referral)
    await casework.deliver_referral(again)

    assert await casework.scalar("SELECT count(*) FROM cases") == 1
    assert await casework.scalar("SELECT count(*) FROM case_referrals") == 1
    assert len(await casework.outbox()) == 2
    assert (
        await casework.scalar(
            "SELECT count(*) FROM inbox WHERE consumer_group = 'casework.referral-events'"
        )
        == 2
    )


async def test_a_referral_of_the_same_child_is_linked_to_the_existing_case(casework) -> None:
    _, first = casework.referral_id()
    _, second = casework.referral_id()
    child, sibling = casework.child_id(), casework.child_id()
    await casework.deliver_referral(casework.triaged(first, children=[(child, 9)], priority="P3"))
    await casework.deliver_referral(
        casework.triaged(
            second,
            children=[(child, 10), (sibling, 6)],
            concerns=["sexual_abuse"],
            priority="P1",
            same_child_as=first,
        )
    )

    assert await casework.scalar("SELECT count(*) FROM cases") == 1
    case_id = await casework.case_id_of(first)
    assert await casework.case_id_of(second) == case_id
    children = await casework.rows("SELECT child_id, age_years FROM case_children ORDER BY seq")
    assert [tuple(c) for c in children] == [(child, 10), (sibling, 6)]
    row = (await casework.rows("SELECT priority, concerns FROM cases"))[0]
    assert row[0] == "P1" and set(row[1]) == {"physical_abuse", "sexual_abuse"}
    # Every open first-contact task takes the tighter P1 target.
    assert (
        await casework.scalar("SELECT count(*) FROM case_first_contact_tasks WHERE priority = 'P1'")
        == 2
    )
    # Linking publishes nothing reporting would count as a new case.
    assert [e.event_type for e in await casework.outbox()] == ["case.opened", "case.assigned"]


async def test_same_child_links_whichever_referral_arrives_first(casework) -> None:
    _, earlier = casework.referral_id()
    _, later = casework.referral_id()
    # The later referral (which names the earlier one) is handled first.
    await casework.deliver_referral(casework.triaged(later, same_child_as=earlier))
    await casework.deliver_referral(casework.triaged(earlier))

    assert await casework.scalar("SELECT count(*) FROM cases") == 1
    assert await casework.case_id_of(earlier) == await casework.case_id_of(later)


async def test_a_late_same_child_decision_moves_the_referral_and_closes_its_empty_case(
    casework,
) -> None:
    _, earlier = casework.referral_id()
    _, later = casework.referral_id()
    await casework.deliver_referral(casework.triaged(earlier))
    await casework.deliver_referral(casework.triaged(later))  # its own case, for now
    own_case = await casework.case_id_of(later)
    # Intake's officer then confirms the child is the earlier referral's child.
    await casework.deliver_referral(casework.triaged(later, same_child_as=earlier))

    target = await casework.case_id_of(earlier)
    assert await casework.case_id_of(later) == target != own_case
    status = await casework.scalar("SELECT status FROM cases WHERE id = :id", id=own_case)
    assert status == "closed_transferred"
    closed = [e for e in await casework.outbox() if e.event_type == "case.closed"]
    assert [e.aggregate_id for e in closed] == [casework.cw.case_pseudonym(own_case)]
    # The list by referral shows both: where it was, and where it is.
    response = await casework.client.get(
        "/api/v1/cases", params={"referral_id": later}, headers=casework.token("supervisor")
    )
    assert {item["id"] for item in response.json()["items"]} == {own_case, target}


async def test_other_event_types_are_ignored(casework) -> None:
    _, referral = casework.referral_id()
    submitted = ReferralSubmitted(
        referral_id=referral,
        source="helpline_1288",
        received_at=casework.clock(),
        concerns=["neglect"],
        children=[{"child_id": casework.child_id(), "province_code": "01"}],
    )
    await casework.deliver_referral(casework.envelope(submitted, referral, source="intake"))
    assert await casework.scalar("SELECT count(*) FROM cases") == 0


async def test_a_referral_a_case_rule_refuses_is_an_invalid_event(casework) -> None:
    _, referral = casework.referral_id()
    child = casework.child_id()
    envelope = casework.triaged(referral, children=[(child, 5), (child, 6)])
    async with casework.runtime.transaction() as session:
        with pytest.raises(InvalidEvent, match="invalid_value"):
            await handlers.on_referral_triaged(
                session,
                envelope,
                ReferralTriaged.model_validate(envelope.data),
                casework.cw,
            )


async def test_an_escalated_tip_opens_a_case_led_by_icac(casework) -> None:
    tip = casework.cw.pseudonyms.pseudonym("tip", "tip-1")
    escalated = TipEscalated(
        tip_id=tip,
        priority="informational",
        incident_type="child_sexual_abuse_material",
        province_code=None,
        victim_count=2,
        escalated_at=casework.clock(),
    )
    envelope = casework.envelope(escalated, tip, source="icac")
    await casework.deliver_tip(envelope)
    await casework.deliver_tip(casework.envelope(escalated, tip, source="icac"))

    rows = await casework.rows("SELECT origin, priority, lead_team, concerns FROM cases")
    assert [tuple(r) for r in rows] == [("tip", "P3", "ICAC", ["online_exploitation"])]
    assert [e.event_type for e in await casework.outbox()] == ["case.opened", "case.assigned"]
    # ICAC finds the case by the tip's pseudonym; another tip's finds nothing.
    supervisor = casework.token("supervisor")
    other = casework.cw.pseudonyms.pseudonym("tip", "tip-2")
    found = await casework.client.get("/api/v1/cases", params={"tip_id": tip}, headers=supervisor)
    assert [i["origin_id"] for i in found.json()["items"]] == [tip]
    none = await casework.client.get("/api/v1/cases", params={"tip_id": other}, headers=supervisor)
    assert none.json()["total"] == 0
    bad = await casework.client.get("/api/v1/cases", params={"tip_id": "tip-1"}, headers=supervisor)
    assert bad.status_code == 422


async def test_a_feed_volume_batch_of_tip_events_opens_only_the_escalated_tips_case(
    casework,
) -> None:
    """ICAC's topic carries a tip.triaged for every tip: casework takes them 500 to a poll in
    one transaction, skips them by type, and opens a case for the one escalation among them."""
    consumer = next(c for c in casework.runtime.consumers if c.topic == "icac.tip.events")
    assert consumer.batch and consumer.max_records >= 500

    escalated_tip = casework.cw.pseudonyms.pseudonym("tip", "tip-escalated")
    feed = [
        casework.envelope(
            TipTriaged(
                tip_id=casework.cw.pseudonyms.pseudonym("tip", f"tip-{i}"),
                priority="P3",
                in_jurisdiction=True,
            ),
            casework.cw.pseudonyms.pseudonym("tip", f"tip-{i}"),
            source="icac",
        )
        for i in range(499)
    ]
    feed.insert(
        250,
        casework.envelope(
            TipEscalated(
                tip_id=escalated_tip,
                priority="P1",
                incident_type="online_enticement",
                escalated_at=casework.clock(),
            ),
            escalated_tip,
            source="icac",
        ),
    )
    await casework.deliver_tip(*feed, as_batch=True)
    await casework.deliver_tip(*feed, as_batch=True)  # the whole poll redelivered

    rows = await casework.rows("SELECT origin, origin_id, priority, lead_team FROM cases")
    assert [tuple(r) for r in rows] == [("tip", escalated_tip, "P1", "ICAC")]
    assert [e.event_type for e in await casework.outbox()] == ["case.opened", "case.assigned"]
    recorded = await casework.scalar(
        "SELECT count(*) FROM inbox WHERE consumer_group = 'casework.tip-events'"
    )
    assert recorded == 500


async def test_forensic_evidence_is_linked_to_its_case_and_old_custody_never_wins(
    casework,
) -> None:
    _, referral = casework.referral_id()
    await casework.deliver_referral(casework.triaged(referral))
    case_id = await casework.case_id_of(referral)
    case_ps = casework.cw.case_pseudonym(case_id)
    item = casework.cw.pseudonyms.pseudonym("evidence", "item-1")
    now = casework.clock()

    def env(data, version):  # type: ignore[no-untyped-def]
        envelope = casework.envelope(data, item, source="forensics")
        return envelope.model_copy(update={"aggregate_version": version})

    registered = EvidenceRegistered(
        item_id=item, case_id=case_ps, item_type="clothing", collected_at=now, registered_at=now
    )
    to_lab = EvidenceCustodyTransferred(
        item_id=item, case_id=case_ps, kind="sent_to_lab", at=now, ledger_index=1
    )
    back = EvidenceCustodyTransferred(
        item_id=item, case_id=case_ps, kind="returned", at=now + timedelta(hours=1), ledger_index=2
    )
    done = EvidenceAnalysisCompleted(
        analysis_id=casework.cw.pseudonyms.pseudonym("analysis", "a-1"),
        item_id=item,
        case_id=case_ps,
        analysis_type="dna_profile",
        result_code="profile_obtained",
        completed_at=now + timedelta(hours=2),
    )
    # The newer transfer arrives before the older one (a replay): the older must not win.
    await casework.deliver_evidence(env(registered, 1), env(back, 3), env(to_lab, 2), env(done, 4))

    response = await casework.client.get(
        f"/api/v1/cases/{case_id}", headers=casework.token("supervisor")
    )
    evidence = response.json()["evidence"]
    assert len(evidence) == 1
    assert evidence[0]["item_type"] == "clothing"
    assert (evidence[0]["custody_kind"], evidence[0]["ledger_index"]) == ("returned", 2)
    kinds = [e["codes"].get("event_type") for e in response.json()["timeline"]]
    assert kinds.count("evidence.custody_transferred") == 2
    assert "evidence.analysis_completed" in kinds


async def test_every_published_event_is_a_contract_event_with_pseudonymous_ids(casework) -> None:
    _, referral = casework.referral_id()
    await casework.deliver_referral(casework.triaged(referral))
    for envelope in await casework.outbox():
        model = EVENT_CATALOGUE[(envelope.event_type, envelope.event_version)]
        model.model_validate(envelope.data)  # extra fields are forbidden by the models
        assert not set(envelope.data) & PERSONAL_FIELD_DENYLIST
        assert re.match(PSEUDONYM_PATTERN, envelope.aggregate_id)


async def test_a_further_referral_revealing_a_child_homicide_hands_the_case_to_hit(
    casework,
) -> None:
    _, first = casework.referral_id()
    _, second = casework.referral_id()
    child = casework.child_id()
    await casework.deliver_referral(casework.triaged(first, children=[(child, None)]))
    await casework.deliver_referral(
        casework.triaged(
            second,
            children=[(child, 12)],
            concerns=["homicide"],
            teams=["HIT", "OVCS"],
            priority="P1",
            same_child_as=first,
        )
    )
    row = (await casework.rows("SELECT lead_team, child_homicide FROM cases"))[0]
    assert tuple(row) == ("HIT", True)
    assigned = [e.data for e in await casework.outbox() if e.event_type == "case.assigned"]
    assert assigned[-1]["team"] == "HIT"
    assert assigned[-1]["reassignment"] is True
    assert assigned[-1]["reason_code"] == "child_homicide"
