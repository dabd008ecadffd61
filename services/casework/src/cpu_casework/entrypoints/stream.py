"""Kafka subscribers of the casework service, and what it publishes.

* ``intake.referral.events``: ``referral.triaged`` opens a case or links the referral to its
  child's case;
* ``icac.tip.events``: ``tip.escalated`` opens a case led by ICAC;
* ``forensics.evidence.events``: every ``evidence.*`` event is linked to its case;
* publishes ``casework.case.events`` through the outbox.

Other event types on these topics are skipped (the inbox still records them). A known event
whose data breaks its contract, or that a case rule can never accept, is dead-lettered with the
rule's name; anything else is retried by the consumer. Handlers that open or link cases and
that move an evidence item's custody state first claim the event's aggregate version, so a
replayed older event is skipped rather than applied over a newer one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream.kafka import KafkaBroker
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.service_layer import events as handlers
from cpu_casework.service_layer.context import Casework
from cpu_shared.contracts import forensics, parse_event
from cpu_shared.contracts.icac import TipEscalated
from cpu_shared.contracts.intake import ReferralTriaged
from cpu_shared.logging import get_logger
from cpu_shared.messaging.consumer import EventConsumer
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


class _SubscriberOptions:
    """A broker whose ``subscriber()`` adds consumer settings the shared runtime does not pass
    (``ServiceRuntime.consumer`` takes none); everything else is the broker itself."""

    def __init__(self, broker: KafkaBroker, **options: Any) -> None:
        self._broker = broker
        self._options = options

    def subscriber(self, *args: Any, **kwargs: Any) -> Any:
        return self._broker.subscriber(*args, **kwargs, **self._options)


def _consumer(
    runtime: ServiceRuntime, topic: str, group: str, handle: Handler, fetch_max_wait_ms: int
) -> EventConsumer:
    """``runtime.consumer(...)``, with a bounded fetch wait.

    Why: aiokafka sends one fetch request per broker at a time, leaving out a partition whose
    records are still being consumed. A message arriving on that partition then waits for the
    in-flight request, which the broker holds until data arrives on *its* partitions or
    ``fetch_max_wait_ms`` passes (500 ms by default): up to half a second before a case opens.
    A shorter wait bounds that delay, at the cost of a few more (empty) fetches when idle.
    """
    consumer = EventConsumer(
        topic=topic,
        group_id=f"{runtime.name}.{group}",
        handle=handle,
        sessions=runtime.sessions,
        metrics=runtime.consumer_metrics,
        stopping=runtime.stopping,
        on_committed=runtime.relay.notify,
    )
    consumer.register(
        _SubscriberOptions(runtime.broker, fetch_max_wait_ms=fetch_max_wait_ms)  # type: ignore[arg-type]
    )
    consumer.broker = runtime.broker  # dead letters go through the service's broker
    runtime.consumers.append(consumer)
    return consumer


def register_subscribers(
    runtime: ServiceRuntime, cw: Casework, *, fetch_max_wait_ms: int = 100
) -> None:
    runtime.publishes(CASE_EVENTS)
    _consumer(
        runtime,
        REFERRAL_EVENTS.name,
        "referral-events",
        referral_handler(cw, "referral-events"),
        fetch_max_wait_ms,
    )
    _consumer(
        runtime, TIP_EVENTS.name, "tip-events", tip_handler(cw, "tip-events"), fetch_max_wait_ms
    )
    _consumer(
        runtime, EVIDENCE_EVENTS.name, "evidence-events", evidence_handler(cw), fetch_max_wait_ms
    )
