"""An icac app on its own fresh PostgreSQL database, driven in-process over HTTP.

The app is built by ``create_app`` exactly as the service process builds it, with the test
GeoIP database the project generates for itself (documentation ranges: 203.0.113.0/24 Phnom
Penh, 198.51.100.0/24 Siem Reap, 192.0.2.0/24 the US). Its lifespan is not run here (no broker,
no relay): what the service publishes stays in the outbox table, where the tests read it.
Tests on the real broker run the lifespan themselves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from cpu_icac.adapters.geoip import write_test_database
from cpu_icac.app import create_app
from cpu_icac.config import IcacSettings
from cpu_icac.service_layer.context import Icac
from cpu_platform.testing.kafka_tools import bearer
from cpu_shared.db import apply_migrations
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.tables import OutboxMessage
from cpu_shared.service import ServiceRuntime

DATA = Path(__file__).parents[1] / "unit" / "data"


def sample_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (DATA / "sample-tips.jsonl").read_text().splitlines()]


@dataclass
class Harness:
    app: FastAPI
    runtime: ServiceRuntime
    icac: Icac
    client: httpx.AsyncClient

    @staticmethod
    def token(*roles: str, user: str = "analyst1") -> dict[str, str]:
        return bearer(*roles, user=user)

    async def post_tip(self, report: dict[str, Any], *, user: str = "analyst1") -> httpx.Response:
        return await self.client.post(
            "/api/v1/tips", json=report, headers=self.token("icac_analyst", user=user)
        )

    async def import_file(
        self, data: bytes, content_type: str, *, params: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.post(
            "/api/v1/tips/import",
            content=data,
            params=params,
            headers={"Content-Type": content_type, **self.token("icac_analyst")},
        )

    async def tip(self, tip_id: str, *roles: str) -> dict[str, Any]:
        response = await self.client.get(
            f"/api/v1/tips/{tip_id}", headers=self.token(*(roles or ("icac_analyst",)))
        )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.runtime.engine.connect() as conn:
            return (await conn.execute(sa.text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.runtime.engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())

    async def outbox(self) -> list[EventEnvelope]:
        async with self.runtime.sessions() as session:
            rows = await session.execute(sa.select(OutboxMessage).order_by(OutboxMessage.id))
            return [EventEnvelope.from_bytes(row.payload) for row in rows.scalars()]


@pytest.fixture
def samples() -> list[dict[str, Any]]:
    """The three reports of shared/data/tips/sample-tips.jsonl."""
    return sample_lines()


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def geoip_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_database(tmp_path_factory.mktemp("geoip") / "test-city.mmdb")


@pytest.fixture
async def icac(make_database: Callable[[str], str], geoip_database: Path) -> AsyncIterator[Harness]:
    url = make_database("icac")
    await apply_migrations("cpu_icac.migrations", url)
    app = create_app(
        IcacSettings(
            database_url=url,
            kafka_bootstrap_servers="127.0.0.1:9",
            run_migrations=False,
            geoip_database=geoip_database,
            import_max_bytes=5 * 1024 * 1024,
        )
    )
    runtime: ServiceRuntime = app.state.runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://icac") as client:
        yield Harness(app, runtime, app.state.icac, client)
    app.state.icac.close()
    await runtime.engine.dispose()
