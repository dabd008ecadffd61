"""Kafka subscribers of the intake service (it consumes no topic yet)."""

from cpu_shared.messaging.topics import REFERRAL_EVENTS
from cpu_shared.service import ServiceRuntime


def register_subscribers(runtime: ServiceRuntime) -> None:
    runtime.publishes(REFERRAL_EVENTS)
