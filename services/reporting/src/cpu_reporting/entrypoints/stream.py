"""Kafka subscribers of the reporting service."""

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_shared.logging import get_logger
from cpu_shared.messaging.topics import CASE_EVENTS, EVIDENCE_EVENTS, REFERRAL_EVENTS, TIP_EVENTS
from cpu_shared.service import ServiceRuntime

log = get_logger(__name__)


async def record_event(_session: AsyncSession, event: object) -> None:
    """Accept an event; the consumer records it in the inbox in the same transaction.

    Domain handlers replace this per event type as the service's features land.
    """
    log.info("event received", event_type=getattr(event, "event_type", "raw"))


def register_subscribers(runtime: ServiceRuntime) -> None:
    runtime.consumer(REFERRAL_EVENTS.name, "referral-events", record_event)
    runtime.consumer(CASE_EVENTS.name, "case-events", record_event)
    runtime.consumer(EVIDENCE_EVENTS.name, "evidence-events", record_event)
    runtime.consumer(TIP_EVENTS.name, "tip-events", record_event)
