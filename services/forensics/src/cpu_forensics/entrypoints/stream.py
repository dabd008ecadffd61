"""Kafka subscribers of the forensics service."""

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_shared.logging import get_logger
from cpu_shared.messaging.topics import CASE_EVENTS, EVIDENCE_EVENTS
from cpu_shared.service import ServiceRuntime

log = get_logger(__name__)


async def record_event(_session: AsyncSession, event: object) -> None:
    """Accept an event; the consumer records it in the inbox in the same transaction.

    Domain handlers replace this per event type as the service's features land.
    """
    log.info("event received", event_type=getattr(event, "event_type", "raw"))


def register_subscribers(runtime: ServiceRuntime) -> None:
    runtime.publishes(EVIDENCE_EVENTS)
    runtime.consumer(CASE_EVENTS.name, "case-events", record_event)
