"""Kafka subscribers of the reporting service: one batch consumer group per event topic.

Each group (``reporting.<topic kind>-events``) applies a batch in one transaction with its inbox
rows (:func:`~cpu_reporting.service_layer.projector.project`); an event that cannot be stored
(a deny-listed field, a broken contract, a malformed offence code) is dead-lettered to
``<topic>.dlq`` with the reason, and the rest of its batch goes in.
"""

from cpu_reporting.service_layer.projector import project, project_one
from cpu_shared.messaging.topics import (
    CASE_EVENTS,
    EVIDENCE_EVENTS,
    REFERRAL_EVENTS,
    TIP_EVENTS,
    Topic,
)
from cpu_shared.service import ServiceRuntime

#: The topics reporting reads, with the suffix of their consumer group.
SUBSCRIPTIONS: tuple[tuple[Topic, str], ...] = (
    (REFERRAL_EVENTS, "referral-events"),
    (CASE_EVENTS, "case-events"),
    (EVIDENCE_EVENTS, "evidence-events"),
    (TIP_EVENTS, "tip-events"),
)


def register_subscribers(runtime: ServiceRuntime) -> None:
    for topic, group in SUBSCRIPTIONS:
        runtime.consumer(
            topic.name, group, project_one, batch=True, max_records=500, handle_batch=project
        )
