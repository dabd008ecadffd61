"""Kafka publishers and subscribers of the intake service.

* publishes ``intake.referral.events`` through its outbox;
* consumes ``casework.case.events``: ``case.opened`` for one of its referrals moves the
  referral to ``case_opened`` (it can no longer be withdrawn: the case goes on in casework).
  Every other event is skipped; the inbox records it all the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_intake.service_layer.referrals import Intake, on_case_opened
from cpu_shared.contracts import parse_event
from cpu_shared.contracts.casework import CaseOpened
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.topics import CASE_EVENTS, REFERRAL_EVENTS
from cpu_shared.service import ServiceRuntime

Handler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]


def case_events_handler(intake: Intake) -> Handler:
    async def handle(session: AsyncSession, envelope: EventEnvelope) -> None:
        data = parse_event(envelope)
        if isinstance(data, CaseOpened) and data.origin == "referral":
            await on_case_opened(intake, session, data)

    return handle


def register_subscribers(runtime: ServiceRuntime, intake: Intake) -> None:
    runtime.publishes(REFERRAL_EVENTS)
    runtime.consumer(CASE_EVENTS.name, "case-events", case_events_handler(intake))
