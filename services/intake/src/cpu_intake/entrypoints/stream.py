"""Kafka publishers (and, later, subscribers) of the intake service.

Intake publishes ``intake.referral.events`` through its outbox; it consumes nothing yet. When
casework announces ``case.opened`` for a referral, a consumer here would move the referral to
``case_opened`` (``Referral.mark_case_opened``) so that it can no longer be withdrawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cpu_shared.messaging.topics import REFERRAL_EVENTS
from cpu_shared.service import ServiceRuntime

if TYPE_CHECKING:
    from cpu_intake.service_layer.referrals import Intake


def register_subscribers(runtime: ServiceRuntime, intake: Intake | None = None) -> None:
    runtime.publishes(REFERRAL_EVENTS)
