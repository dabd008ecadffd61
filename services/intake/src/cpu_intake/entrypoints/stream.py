"""Kafka subscribers of the intake service (it consumes no topic yet)."""

from cpu_shared.service import ServiceRuntime


def register_subscribers(runtime: ServiceRuntime) -> None:
    """The intake service only publishes, through its outbox."""
