"""Issue 3: a malformed message lands in the DLQ with its reason, the next valid one is
processed; after a fix, redrive processes the dead letter once, and redrive is idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from cpu_platform.testing.kafka_tools import (
    committed_offsets,
    envelope,
    produce,
    read_all,
    unique,
    wait_until,
)
from cpu_platform.testing.probe_service.__main__ import ProbeSettings, build
from cpu_shared.messaging import dead_letters as dl


def cpu(*args: str, bootstrap: str) -> str:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    done = subprocess.run(
        [sys.executable, "-m", "cpu_platform.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


async def test_dead_letter_then_fix_and_redrive_once(
    kafka_bootstrap_servers: str, make_database: Callable[[str], str]
) -> None:
    topic = unique("test.dlq")
    settings = ProbeSettings(
        database_url=make_database("probe"),
        topic_in=topic,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
    )
    app, runtime = build(settings)
    poison, valid = envelope("p", poison=True), envelope("v")

    async def applied(event_id: str) -> int:
        async with runtime.engine.connect() as conn:
            q = sa.text("SELECT count(*) FROM probe_effect WHERE event_id = :e")
            return (await conn.execute(q, {"e": event_id})).scalar_one()

    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=90):
        await produce(
            kafka_bootstrap_servers,
            topic,
            [
                (b"m", b"{not json"),
                (b"p", poison.to_bytes()),
                (b"v", valid.to_bytes()),
            ],
        )

        async def valid_applied() -> bool:
            return await applied(str(valid.event_id)) == 1

        await wait_until(valid_applied, 120, "the valid message after the bad ones")
        assert await applied(str(poison.event_id)) == 0
        offsets = await committed_offsets(kafka_bootstrap_servers, "probe.probe")
        assert offsets[(topic, 0)] == 3, "the line moved on past the dead letters"

        letters = await dl.read_dead_letters(kafka_bootstrap_servers, topic + ".dlq")
        assert [letter.offset for letter in letters] == [0, 1]
        malformed, refused = letters
        assert malformed.value == b"{not json"
        assert malformed.headers[dl.H_EXCEPTION] == "ValidationError"
        assert "json" in malformed.reason.lower()
        assert refused.headers[dl.H_EXCEPTION] == "InvalidEvent"
        assert refused.reason == "data.poison: refused by the probe's rules"
        for letter in letters:
            assert letter.headers[dl.H_GROUP] == "probe.probe"
            assert letter.headers[dl.H_TOPIC] == topic
            assert letter.headers[dl.H_PARTITION] == "0"
            assert letter.headers[dl.H_FIRST_FAILED]
        assert [letter.headers[dl.H_OFFSET] for letter in letters] == ["0", "1"]
        sample = runtime.registry.get_sample_value
        labels = {"topic": topic, "group": "probe.probe"}
        assert sample("cpu_events_dead_lettered_total", labels) == 2
        assert sample("cpu_events_consumed_total", labels) == 1
        await runtime.lag_monitor.measure()
        assert sample("cpu_dlq_depth", {"topic": topic}) == 2
        assert sample("cpu_consumer_lag", {**labels, "partition": "0"}) == 0
        assert sample("cpu_event_handler_seconds_count", labels) == 1

        listed = [
            json.loads(line)
            for line in cpu(
                "dlq", "list", topic, "--json", bootstrap=kafka_bootstrap_servers
            ).splitlines()
        ]
        assert [item["reason"] for item in listed] == [malformed.reason, refused.reason]
        assert all(item["consumer_group"] == "probe.probe" for item in listed)

        settings.accept_poison = True  # the fix
        out = cpu("dlq", "redrive", topic, bootstrap=kafka_bootstrap_servers)
        assert "2 replayed" in out

        async def poison_applied() -> bool:
            return await applied(str(poison.event_id)) == 1

        await wait_until(poison_applied, 120, "the redriven dead letter to be processed")

        async def malformed_back_in_dlq() -> bool:
            letters = await dl.read_dead_letters(kafka_bootstrap_servers, topic + ".dlq")
            return len(letters) == 3

        await wait_until(malformed_back_in_dlq, 120, "the still-malformed message to return")
        again = (await dl.read_dead_letters(kafka_bootstrap_servers, topic + ".dlq"))[2]
        assert again.value == b"{not json"
        assert again.headers[dl.H_FIRST_FAILED] == malformed.headers[dl.H_FIRST_FAILED]

        # A second redrive replays only what was dead-lettered since: never the poison again.
        out = cpu("dlq", "redrive", topic, bootstrap=kafka_bootstrap_servers)
        assert "1 replayed" in out
        out = cpu("dlq", "redrive", topic, bootstrap=kafka_bootstrap_servers)
        assert "0 replayed" in out
        main = await read_all(kafka_bootstrap_servers, topic)
        assert sum(r.value == poison.to_bytes() for r in main) == 2  # original + one redrive
        assert await applied(str(poison.event_id)) == 1
        assert sample("cpu_events_consumed_total", labels) == 2
        assert sample("cpu_outbox_backlog", {"service": "probe"}) == 0
