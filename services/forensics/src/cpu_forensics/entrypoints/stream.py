"""Kafka subscribers and publishers of the forensics service.

* Publishes ``forensics.evidence.events`` through the outbox: ``evidence.*`` (keyed by the
  item's pseudonym) and ``ledger.tree_head_signed`` (keyed by the ledger's origin).
* Consumes ``casework.case.events`` (group ``forensics.case-events``): ``case.opened`` and
  ``case.assigned`` say which teams and province a case has, which decides who sees its
  evidence (``service_layer.cases``). Every other event type is acknowledged and ignored.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_forensics.service_layer.cases import on_case_event
from cpu_forensics.service_layer.context import Forensics
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.topics import CASE_EVENTS, EVIDENCE_EVENTS
from cpu_shared.service import ServiceRuntime


def register_subscribers(runtime: ServiceRuntime, fx: Forensics) -> None:
    runtime.publishes(EVIDENCE_EVENTS)

    async def case_event(session: AsyncSession, envelope: EventEnvelope) -> None:
        await on_case_event(fx, session, envelope)

    runtime.consumer(CASE_EVENTS.name, "case-events", case_event)
