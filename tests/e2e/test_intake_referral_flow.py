"""Issue 5 end to end, on the real broker, with every service a process of its own: a referral
POSTed to intake is published as ``referral.triaged`` on ``intake.referral.events`` and
consumed by casework (another process), which records it in its inbox. Nothing personal is
left in intake's logs, its events or its database in plaintext."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_platform.testing.kafka_tools import bearer, read_all
from cpu_platform.testing.stack import PlatformStack, run
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.security.crypto import Keyring

pytestmark = pytest.mark.e2e

TIMEOUT = 120  # seconds; a shared 2-core machine can be slow, never a timing assertion

GIVEN, FAMILY, KHMER = "Sreypov", "Measchanthy", "មាស ស្រីពៅ"
REPORTER, PHONE = "Heng Bopharath", "097 555 0142"
NARRATIVE = "Seen at the river market at night with a man who is not family, twice this week."
VILLAGE, PERPETRATOR = "Phum Kbal Thnal", "Ouk Samnang"


def referral() -> dict[str, Any]:
    return {
        "source": "helpline_1288",
        "received_at": (datetime.now(UTC) - timedelta(minutes=20)).isoformat(),
        "reporter": {"name": REPORTER, "phone": PHONE, "relationship": "neighbour"},
        "children": [
            {
                "given_name": GIVEN,
                "family_name": FAMILY,
                "name_km": KHMER,
                "sex": "female",
                "date_of_birth": "2013-11-02",
                "province_code": "17",
                "district": "Siem Reap",
                "commune": "Sla Kram",
                "village": VILLAGE,
            }
        ],
        "concerns": ["trafficking", "sexual_abuse"],
        "alleged_perpetrators": [{"name": PERPETRATOR, "has_access_to_child": False}],
        "narrative": NARRATIVE,
        "immediate_danger": False,
        "injuries": False,
    }


async def _triaged_event(bootstrap: str, aggregate_id: str) -> EventEnvelope:
    deadline = time.monotonic() + TIMEOUT
    while True:
        for record in await read_all(bootstrap, "intake.referral.events"):
            envelope = EventEnvelope.from_bytes(record.value)
            if envelope.aggregate_id == aggregate_id and envelope.event_type == "referral.triaged":
                assert record.key == aggregate_id.encode()
                return envelope
        if time.monotonic() > deadline:
            raise AssertionError("referral.triaged never reached intake.referral.events")
        await asyncio.sleep(0.5)


async def _inbox_row(casework_url: str, event_id: str) -> Any:
    engine = create_async_engine(casework_url)
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        sa.text("SELECT consumer_group, topic FROM inbox WHERE event_id = :id"),
                        {"id": event_id},
                    )
                ).first()
            if row is not None:
                return row
            if time.monotonic() > deadline:
                raise AssertionError("casework never recorded referral.triaged in its inbox")
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def _dump(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                )
            ).scalars()
            text = []
            for table in list(tables):
                rows = await conn.execute(sa.text(f'SELECT t::text FROM "{table}" t'))  # noqa: S608
                text += list(rows.scalars())
            payloads = await conn.execute(
                sa.text("SELECT convert_from(payload, 'UTF8') FROM outbox")
            )
            text += list(payloads.scalars())
        return "\n".join(text)
    finally:
        await engine.dispose()


def test_a_referral_reaches_casework_through_the_broker(platform_stack: PlatformStack) -> None:
    intake = platform_stack.url("intake")
    response = httpx.post(
        f"{intake}/api/v1/referrals",
        json=referral(),
        headers=bearer("intake_officer", user="officer.e2e"),
        timeout=30,
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["priority"] == "P2" and created["status"] == "triaged"
    # Nothing earlier looks like this child: casework is told at once.
    assert created["match_decision_pending"] is False

    pseudonym = Keyring.load().pseudonymizer().pseudonym("referral", created["id"])
    envelope = run(_triaged_event(platform_stack.bootstrap_servers, pseudonym))
    assert envelope.source == "intake"
    assert envelope.data["priority"] == "P2"
    assert envelope.data["teams"] == ["OVCS"]
    assert envelope.data["province_code"] == "17"
    assert envelope.data["children"][0]["age_years"] in (12, 13)
    assert envelope.data["same_child_as_referral_id"] is None

    row = run(_inbox_row(platform_stack.database_urls["casework"], str(envelope.event_id)))
    assert row.consumer_group.startswith("e2e-stack.casework.")
    assert row.topic == "intake.referral.events"

    personal = [GIVEN, FAMILY, KHMER, REPORTER, "975550142", NARRATIVE, VILLAGE, PERPETRATOR]
    event_text = json.dumps(envelope.model_dump(mode="json"), ensure_ascii=False)
    logs = platform_stack.logs()
    dump = run(_dump(platform_stack.database_urls["intake"]))
    assert created["reference"] in dump
    for value in personal:
        assert value not in event_text, value
        assert value not in dump, value
        for service, text in logs.items():
            assert value not in text, (service, value)
