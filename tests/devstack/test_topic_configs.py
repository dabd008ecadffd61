"""Topics are created with the retention the catalogue gives them (CONTRACT.md section 4):
event and dead-letter topics keep every message, the raw tip feed 30 days."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from cpu_platform.devstack.kafka import ensure_topics
from cpu_platform.testing.kafka_tools import unique
from cpu_shared.messaging.topics import TIPS_INBOUND, TOPICS, topic_configs


async def _retention(bootstrap: str, names: list[str]) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    finally:
        await admin.close()
    found = {}
    for response in responses:
        for _code, _msg, _type, name, entries in response.resources:
            for entry in entries:
                if entry[0] == "retention.ms":
                    found[name] = entry[1]
    return found


def test_the_catalogue_keeps_events_and_dead_letters_for_ever() -> None:
    configs = topic_configs()
    assert {name for name in configs} == {t.name for t in TOPICS} | {t.dlq for t in TOPICS}
    for name, config in configs.items():
        expected = "2592000000" if name == TIPS_INBOUND.name else "-1"
        assert config["retention.ms"] == expected, name


def test_new_topics_are_created_with_their_retention(kafka_bootstrap_servers: str) -> None:
    forever, month = unique("configs.events"), unique("configs.feed")
    ensure_topics(
        kafka_bootstrap_servers,
        {forever: 1, month: 1},
        configs={forever: {"retention.ms": "-1"}, month: {"retention.ms": "2592000000"}},
    )
    found = asyncio.run(_retention(kafka_bootstrap_servers, [forever, month]))
    assert found == {forever: "-1", month: "2592000000"}
