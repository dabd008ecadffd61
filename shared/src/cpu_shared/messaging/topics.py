"""The catalogue of Kafka topics (CONTRACT.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass

DLQ_SUFFIX = ".dlq"
# Event topics and dead-letter topics keep every message: `cpu reporting rebuild` replays the
# event topics from offset 0, and a dead letter must stay until it is redriven.
KEEP_FOREVER = -1
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    publisher: str
    partitions: int = 3
    description: str = ""
    retention_ms: int = KEEP_FOREVER

    @property
    def dlq(self) -> str:
        return dead_letter_topic(self.name)


REFERRAL_EVENTS = Topic("intake.referral.events", "intake", description="Referral lifecycle")
CASE_EVENTS = Topic("casework.case.events", "casework", description="Case lifecycle and outcomes")
EVIDENCE_EVENTS = Topic(
    "forensics.evidence.events", "forensics", description="Evidence and custody"
)
# Raw partner reports (personal data) that icac copies into its own, encrypted store.
TIPS_INBOUND = Topic(
    "icac.tips.inbound",
    "external feed adapters",
    partitions=6,
    description="Raw tip reports",
    retention_ms=THIRTY_DAYS_MS,
)
TIP_EVENTS = Topic("icac.tip.events", "icac", description="Tip triage and escalation")

TOPICS: tuple[Topic, ...] = (
    REFERRAL_EVENTS,
    CASE_EVENTS,
    EVIDENCE_EVENTS,
    TIPS_INBOUND,
    TIP_EVENTS,
)


def dead_letter_topic(topic: str) -> str:
    """``<topic>.dlq``: where a consumer of ``topic`` puts what it cannot process."""
    return topic + DLQ_SUFFIX


def all_topic_names(with_dlq: bool = True) -> dict[str, int]:
    """Every topic the platform needs, with its partition count, for provisioning."""
    names = {t.name: t.partitions for t in TOPICS}
    if with_dlq:
        names |= {t.dlq: 1 for t in TOPICS}
    return names


def topic_configs() -> dict[str, dict[str, str]]:
    """The topic-level configuration each topic is created with (retention), by name."""
    configs = {
        t.name: {"retention.ms": str(t.retention_ms), "cleanup.policy": "delete"} for t in TOPICS
    }
    for t in TOPICS:
        configs[t.dlq] = {"retention.ms": str(KEEP_FOREVER), "cleanup.policy": "delete"}
    return configs
