"""Kafka subscribers of the casework service, and what it publishes.

* ``intake.referral.events``: ``referral.triaged`` opens a case or links the referral to its
  child's case;
* ``icac.tip.events``: ``tip.escalated`` opens a case led by ICAC;
* ``forensics.evidence.events``: every ``evidence.*`` event is linked to its case;
* publishes ``casework.case.events`` through the outbox.

Other event types on these topics are skipped (the inbox still records them); on
``icac.tip.events`` they are skipped by type before their data is read, because that topic
carries a ``tip.triaged`` for every tip of every feed and casework wants only escalations.
A known event whose data breaks its contract, or that a case rule can never accept, is
dead-lettered with the rule's name; anything else is retried by the consumer. Handlers that
open or link cases and that move an evidence item's custody state first claim the event's
aggregate version, so a replayed older event is skipped rather than applied over a newer one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.service_layer import events as handlers
from cpu_casework.service_layer.context import Casework
from cpu_shared.contracts import forensics, parse_event
from cpu_shared.contracts.icac import TipEscalated
from cpu_shared.contracts.intake import ReferralTriaged
from cpu_shared.logging import get_logger
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.ordering import claim_version
from cpu_shared.messaging.topics import CASE_EVENTS, EVIDENCE_EVENTS, REFERRAL_EVENTS, TIP_EVENTS
from cpu_shared.service import ServiceRuntime

log = get_logger(__name__)

Handler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]

_EVIDENCE_TYPES = (
    forensics.EvidenceRegistered,
    forensics.EvidenceCustodyTransferred,
    forensics.EvidenceAnalysisRequested,
    forensics.EvidenceAnalysisCompleted,
    forensics.EvidenceDisposed,
)


def referral_handler(cw: Casework, group: str) -> Handler:
    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        data = parse_event(envelope)
        if not isinstance(data, ReferralTriaged):
            return
        if not await claim_version(
            session,
            stream=f"casework.{group}",
            aggregate_id=envelope.aggregate_id,
            version=envelope.aggregate_version,
        ):
            log.info("older referral event skipped", referral_id=data.referral_id)
            return
        await handlers.on_referral_triaged(session, envelope, data, cw)

    return handle


def tip_handler(cw: Casework, group: str) -> Handler:
    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        if envelope.event_type != TipEscalated.event_type:
            return
        data = parse_event(envelope)
        if not isinstance(data, TipEscalated):
            return
        if not await claim_version(
            session,
            stream=f"casework.{group}",
            aggregate_id=envelope.aggregate_id,
            version=envelope.aggregate_version,
        ):
            log.info("older tip event skipped", tip_id=data.tip_id)
            return
        await handlers.on_tip_escalated(session, envelope, data, cw)

    return handle


def evidence_handler(cw: Casework) -> Handler:
    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        data = parse_event(envelope)
        if not isinstance(data, _EVIDENCE_TYPES):
            return
        await handlers.on_evidence_event(session, envelope, data, cw)

    return handle


def register_subscribers(
    runtime: ServiceRuntime, cw: Casework, *, fetch_max_wait_ms: int = 100
) -> None:
    runtime.publishes(CASE_EVENTS)
    # A short broker wait bounds how long a new referral waits in a held fetch (latency).
    options = {"fetch_max_wait_ms": fetch_max_wait_ms}
    runtime.consumer(
        REFERRAL_EVENTS.name, "referral-events", referral_handler(cw, "referral-events"), **options
    )
    # ICAC's topic runs at feed volume (every tip is triaged), so it is read in batches: one
    # transaction and one inbox statement per batch, not per skipped tip.triaged.
    runtime.consumer(
        TIP_EVENTS.name,
        "tip-events",
        tip_handler(cw, "tip-events"),
        batch=True,
        max_records=500,
        **options,
    )
    runtime.consumer(EVIDENCE_EVENTS.name, "evidence-events", evidence_handler(cw), **options)
