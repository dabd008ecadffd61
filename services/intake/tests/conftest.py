"""Fixtures of the intake tests: a referral body, unique names, and the service on real
PostgreSQL and the real broker (in this process, through its ASGI app)."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator, Callable
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from cpu_intake.app import create_app
from cpu_intake.config import IntakeSettings
from cpu_platform.devstack.kafka import ensure_topics
from cpu_platform.testing.kafka_tools import bearer
from cpu_platform.testing.postgres_fixtures import database_name
from cpu_shared.messaging.topics import all_topic_names

KHMER_CONSONANTS = "កខគឃងចឆជឈញដឋឌឍណតថទធនបផពភមយរលវសហឡអ"
KHMER_VOWELS = "ាិីឹឺុូួើឿៀេែៃោៅ"


def latin_name(rng: random.Random | None = None) -> str:
    """A name no other test uses (letters only, as matching keys keep only letters)."""
    rng = rng or random.Random()
    return rng.choice(string.ascii_uppercase) + "".join(
        rng.choice(string.ascii_lowercase) for _ in range(9)
    )


def khmer_name(rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    word = "".join(rng.choice(KHMER_CONSONANTS) + rng.choice(KHMER_VOWELS) for _ in range(3))
    return word + " " + "".join(rng.choice(KHMER_CONSONANTS) for _ in range(3))


def referral_body(**changes: Any) -> dict[str, Any]:
    """A valid referral (P3, one child) with names no other test uses."""
    received = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    body: dict[str, Any] = {
        "source": "helpline_1288",
        "received_at": received,
        "reporter": {
            "name": "Chan " + latin_name(),
            "phone": "012 345 678",
            "relationship": "aunt",
        },
        "children": [
            {
                "given_name": latin_name(),
                "family_name": latin_name(),
                "name_km": khmer_name(),
                "sex": "female",
                "date_of_birth": "2016-05-04",
                "province_code": "12",
                "district": "Dangkao",
                "commune": "Prey Sa",
                "village": "Village " + latin_name(),
            }
        ],
        "concerns": ["neglect"],
        "alleged_perpetrators": [
            {"name": "Mr " + latin_name(), "relationship": "stepfather", "age_estimate": 40}
        ],
        "narrative": "Neighbours heard shouting " + latin_name() + ".",
        "immediate_danger": False,
        "injuries": False,
    }
    body.update(deepcopy(changes))
    return body


@dataclass
class IntakeUnderTest:
    app: FastAPI
    client: httpx.AsyncClient
    database_url: str

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    async def submit(self, body: dict[str, Any], *roles: str, **claims: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/referrals",
            json=body,
            headers=bearer(*(roles or ("intake_officer",)), **claims),
        )
        assert response.status_code == 201, response.text
        return response.json()


async def start_intake(database_url: str, bootstrap: str) -> tuple[FastAPI, LifespanManager]:
    ensure_topics(bootstrap, all_topic_names())
    app = create_app(IntakeSettings(database_url=database_url, kafka_bootstrap_servers=bootstrap))
    manager = LifespanManager(app, startup_timeout=120, shutdown_timeout=60)
    await manager.__aenter__()
    return app, manager


@pytest.fixture(scope="module")
async def intake(
    postgres_server: Any, kafka_bootstrap_servers: str
) -> AsyncIterator[IntakeUnderTest]:
    """The intake app on a database of this test module, started (migrations, relay)."""
    name = database_name("intake")
    postgres_server.create_database(name)
    url = postgres_server.url(name)
    app, manager = await start_intake(url, kafka_bootstrap_servers)
    transport = httpx.ASGITransport(app=manager.app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield IntakeUnderTest(app, client, url)
    finally:
        await manager.__aexit__(None, None, None)
        postgres_server.drop_database(name)


@pytest.fixture
def body() -> Callable[..., dict[str, Any]]:
    return referral_body


@dataclass(frozen=True)
class Names:
    latin: Callable[[], str] = latin_name
    khmer: Callable[[], str] = khmer_name


@pytest.fixture
def names() -> Names:
    return Names()
