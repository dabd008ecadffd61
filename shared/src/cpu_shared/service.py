"""Builds one service process: HTTP (FastAPI) and Kafka subscribers, its store, its outbox relay.

Every service's ``app.py`` is a few lines on top of :class:`ServiceRuntime`, so the five share
one shape: ``/health``, ``/ready``, ``/metrics``, ``/openapi.json``, JSON logs with correlation
ids, migrations applied at start, and a clean stop on SIGTERM (in-flight work finishes; no
offset is committed for a message that was not processed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import uvicorn
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import APIRouter, Depends, FastAPI, Response
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_shared.config import ServiceSettings
from cpu_shared.db import apply_migrations, check_database, create_engine, session_factory
from cpu_shared.logging import configure_logging, get_logger
from cpu_shared.messaging.asyncapi import declare_publisher
from cpu_shared.messaging.consumer import ConsumerMetrics, EventConsumer
from cpu_shared.messaging.lag import LagMonitor
from cpu_shared.messaging.outbox import OutboxMetrics, OutboxRelay
from cpu_shared.messaging.topics import Topic
from cpu_shared.security.audit import audit_router
from cpu_shared.security.auth import current_principal, install_auth
from cpu_shared.security.crypto import Keyring
from cpu_shared.security.http import harden
from cpu_shared.security.permissions import PermissionTable

log = get_logger(__name__)


class ServiceRuntime:
    """The parts of one service process, wired once and shared by its entrypoints."""

    def __init__(self, settings: ServiceSettings, *, migrations_package: str) -> None:
        self.settings = settings
        self.name = settings.service_name
        # Before anything else logs, so every line of the process is JSON.
        configure_logging(self.name, settings.log_level)
        self.migrations_package = migrations_package
        self.registry = CollectorRegistry()
        self.engine = create_engine(settings.database_url)
        self.sessions = session_factory(self.engine)
        self.stopping = asyncio.Event()
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=self.name,
            enable_idempotence=True,  # acks=all, no duplicates from producer retries
            graceful_timeout=settings.graceful_timeout,
            middlewares=[KafkaPrometheusMiddleware(registry=self.registry, app_name=self.name)],
            logger=get_logger(f"{self.name}.broker"),
        )
        self.consumer_metrics = ConsumerMetrics(self.registry)
        self.outbox_metrics = OutboxMetrics(self.registry, self.name)
        self.relay = OutboxRelay(
            engine=self.engine,
            publish=self._publish_unconfirmed,
            service=self.name,
            metrics=self.outbox_metrics,
        )
        self.consumers: list[EventConsumer] = []
        self.lag_monitor = LagMonitor(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            registry=self.registry,
            interval=settings.lag_interval,
        )

    @functools.cached_property
    def keyring(self) -> Keyring:
        """This process's secrets (field encryption, blind indexes, pseudonyms), loaded once."""
        return Keyring.load()

    async def _publish_unconfirmed(
        self, topic: str, key: bytes, value: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Any]:
        return await self.broker.publish(
            value, topic=topic, key=key, headers=headers, no_confirm=True
        )

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: state and outbox rows commit together, then the relay is woken."""
        async with self.sessions() as session, session.begin():
            yield session
        self.relay.notify()

    def publishes(self, topic: Topic) -> None:
        """Declare the topic this service publishes (through its outbox), for AsyncAPI."""
        declare_publisher(self.broker, topic)

    def consumer(self, topic: str, group: str, handle: Any, **options: Any) -> EventConsumer:
        """Declare a consumer group of this service; it starts with the process."""
        consumer = EventConsumer(
            topic=topic,
            group_id=f"{self.settings.kafka_group_prefix}{self.name}.{group}",
            handle=handle,
            sessions=self.sessions,
            metrics=self.consumer_metrics,
            stopping=self.stopping,
            on_committed=self.relay.notify,
            **options,
        )
        consumer.register(self.broker)
        self.consumers.append(consumer)
        self.lag_monitor.watch(consumer.group_id, topic)
        return consumer

    async def is_ready(self) -> dict[str, bool]:
        timeout = self.settings.readiness_timeout
        store, broker = await asyncio.gather(
            check_database(self.engine, timeout), self._broker_reachable(timeout)
        )
        return {"store": store, "broker": broker}

    async def _broker_reachable(self, timeout: float) -> bool:
        try:
            return await self.broker.ping(timeout=timeout)
        except Exception:
            return False

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        if self.settings.run_migrations:
            await apply_migrations(self.migrations_package, self.settings.database_url)
        await self._start_broker()
        relay_task = asyncio.create_task(self.relay.run(), name=f"{self.name}-outbox-relay")
        lag_task = asyncio.create_task(self.lag_monitor.run(self.stopping), name="lag-monitor")
        log.info("service started", port=self.settings.port)
        try:
            yield
        finally:
            log.info("service stopping")
            # Retry loops see this and give up without acknowledging their message.
            self.stopping.set()
            await self.broker.stop()  # waits up to graceful_timeout for in-flight handlers
            self.relay.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(relay_task, timeout=self.settings.graceful_timeout)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(lag_task, timeout=5)
            await self.engine.dispose()
            log.info("service stopped")

    async def _start_broker(self, attempts: int = 30) -> None:
        for attempt in range(1, attempts + 1):
            try:
                await self.broker.start()
                return
            except Exception as exc:
                if attempt == attempts:
                    raise
                log.warning(
                    "broker not reachable at start; retrying",
                    attempt=attempt,
                    error=type(exc).__name__,
                )
                with contextlib.suppress(Exception):
                    await self.broker.stop()
                await asyncio.sleep(min(2.0, 0.2 * attempt))

    async def session(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency: a session for one request (the route controls its transaction)."""
        async with self.sessions() as session:
            yield session

    def create_app(
        self,
        *,
        title: str,
        permissions: PermissionTable,
        routers: Sequence[APIRouter] = (),
        configure: Callable[[FastAPI], None] | None = None,
        multipart_prefixes: Sequence[str] = (),
        content_types: dict[str, Sequence[str]] | None = None,
        body_limits: dict[str, int] | None = None,
    ) -> FastAPI:
        """The service's FastAPI app. Every ``/api/v1`` route needs a verified bearer token;
        each route also declares its action in ``permissions`` (deny by default)."""
        app = FastAPI(title=title, version="0.1.0", lifespan=self.lifespan)
        app.state.runtime = self
        app.state.permissions = permissions
        install_auth(app)
        app.add_middleware(CorrelationIdMiddleware, header_name="X-Correlation-ID")
        Instrumentator(
            excluded_handlers=["/metrics", "/health", "/ready"],
            should_group_status_codes=False,
            registry=self.registry,
        ).instrument(app, metric_namespace="cpu", metric_subsystem=self.name)

        @app.get("/health", tags=["ops"])
        async def health() -> dict[str, str]:
            return {"status": "ok", "service": self.name}

        @app.get("/ready", tags=["ops"])
        async def ready() -> JSONResponse:
            checks = await self.is_ready()
            ok = all(checks.values())
            return JSONResponse(
                {"status": "ready" if ok else "not_ready", "checks": checks},
                status_code=200 if ok else 503,
            )

        @app.get("/metrics", tags=["ops"], include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

        api_dependencies = [Depends(current_principal)]
        for router in (*routers, audit_router(permissions, self.session)):
            app.include_router(router, prefix="/api/v1", dependencies=api_dependencies)
        if configure:
            configure(app)
        harden(
            app,
            multipart_prefixes=multipart_prefixes,
            content_types=content_types,
            body_limits=body_limits,
        )
        return app


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run one service process until SIGTERM or SIGINT, then stop gracefully."""
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # request paths are counted in metrics; lines could carry ids
        timeout_graceful_shutdown=int(settings.graceful_timeout),
        proxy_headers=False,
    )
