"""Builds the icac service process."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from fastapi import FastAPI

from cpu_icac.config import IcacSettings
from cpu_icac.entrypoints.http import IMPORT_MEDIA_TYPES, router
from cpu_icac.entrypoints.stream import register_subscribers
from cpu_icac.permissions import PERMISSIONS
from cpu_icac.service_layer.context import Icac
from cpu_icac.web.pages import install_pages
from cpu_shared.logging import get_logger
from cpu_shared.messaging.outbox import KafkaOutboxProducer
from cpu_shared.service import ServiceRuntime, serve

log = get_logger(__name__)


def build_icac(runtime: ServiceRuntime, settings: IcacSettings) -> Icac:
    return Icac(
        settings=settings,
        keys=lambda: runtime.keyring,
        registry=runtime.registry,
        source=runtime.name,
    )


def _with_startup(app: FastAPI, runtime: ServiceRuntime, icac: Icac) -> None:
    """After the runtime's start (migrations, broker): tune the collector, load the hash sets
    and open the GeoIP database before the first tip; close them at the end."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        thresholds = gc.get_threshold()
        # A GeoIP database that is configured but cannot be opened stops the start, before
        # any consumer runs: better than triaging a whole feed without places.
        _ = icac.geoip
        async with inner(app_):
            if icac.settings.gc_gen0_threshold:
                gc.set_threshold(icac.settings.gc_gen0_threshold, *thresholds[1:])
            try:
                async with runtime.sessions() as session:
                    await icac.hash_sets.current(session)
            except Exception as exc:  # the store may be down: /ready says so; batches retry
                log.warning("hash sets not preloaded", error=type(exc).__name__)
            try:
                yield
            finally:
                icac.close()
                gc.set_threshold(*thresholds)

    app.router.lifespan_context = lifespan


def create_app(settings: IcacSettings | None = None) -> FastAPI:
    settings = settings or IcacSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_icac.migrations")
    # Two events per tip: the relay publishes through a plain idempotent aiokafka producer
    # (acks=all) of its own, a large claim at a time, not message by message through the
    # broker's framework layers.
    runtime.relay.use_producer(
        KafkaOutboxProducer(settings.kafka_bootstrap_servers, client_id=f"{runtime.name}-outbox"),
        batch_size=settings.relay_batch,
    )
    icac = build_icac(runtime, settings)
    register_subscribers(runtime, icac)

    def configure(app: FastAPI) -> None:
        app.state.icac = icac
        install_pages(app)
        _with_startup(app, runtime, icac)

    return runtime.create_app(
        title="CPU icac service",
        permissions=PERMISSIONS,
        routers=[router],
        configure=configure,
        # Imports take JSON lines, CyberTipline XML or a CMT export; hash sets come as a
        # multipart upload (or a Project VIC document itself, as JSON). Both may be large.
        content_types={
            "/api/v1/tips/import": IMPORT_MEDIA_TYPES,
            "/api/v1/hash-sets": ("multipart/form-data", "application/json"),
        },
        body_limits={
            "/api/v1/tips/import": settings.import_max_bytes,
            "/api/v1/hash-sets": settings.hash_set_max_bytes,
        },
    )


def main() -> None:
    settings = IcacSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
