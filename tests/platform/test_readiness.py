"""Issue 2: /ready is 503 while the broker is down and 200 again once it is back, no restart."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from asgi_lifespan import LifespanManager

from cpu_forensics.app import create_app
from cpu_forensics.config import ForensicsSettings
from cpu_platform.devstack.kafka import LocalKafka
from cpu_platform.testing.kafka_tools import wait_until


async def test_ready_follows_the_broker(
    restartable_kafka: LocalKafka, make_database: Callable[[str], str]
) -> None:
    app = create_app(
        ForensicsSettings(
            database_url=make_database("forensics"),
            kafka_bootstrap_servers=restartable_kafka.bootstrap_servers,
            readiness_timeout=1.5,
        )
    )
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=90) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            first = await client.get("/ready")
            assert first.status_code == 200, first.text
            assert first.json()["checks"] == {"store": True, "broker": True}

            restartable_kafka.stop()
            down = await client.get("/ready")
            assert down.status_code == 503
            assert down.json()["checks"] == {"store": True, "broker": False}
            assert (await client.get("/health")).status_code == 200

            restartable_kafka.start()

            async def ready_again() -> bool:
                return (await client.get("/ready")).status_code == 200

            await wait_until(ready_again, 120, "/ready to answer 200 after the broker restart")


async def test_ready_is_503_when_the_store_is_unreachable(kafka_bootstrap_servers: str) -> None:
    app = create_app(
        ForensicsSettings(
            database_url="postgresql+asyncpg://app@127.0.0.1:1/nowhere",
            kafka_bootstrap_servers=kafka_bootstrap_servers,
            readiness_timeout=1.0,
            run_migrations=False,
        )
    )
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=90) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            response = await client.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"] == {"store": False, "broker": True}
