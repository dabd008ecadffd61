"""Builds the casework service process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from cpu_casework.config import CaseworkSettings
from cpu_casework.domain.deadlines import FirstContactPolicy
from cpu_casework.entrypoints.http import router
from cpu_casework.entrypoints.stream import register_subscribers
from cpu_casework.permissions import PERMISSIONS
from cpu_casework.service_layer.commands import refresh_overdue_metric
from cpu_casework.service_layer.context import Casework, CaseworkMetrics
from cpu_casework.web.pages import install_pages
from cpu_shared.logging import get_logger
from cpu_shared.service import ServiceRuntime, serve

log = get_logger(__name__)


def build_casework(runtime: ServiceRuntime, settings: CaseworkSettings) -> Casework:
    return Casework(
        keys=lambda: runtime.keyring,
        policy=FirstContactPolicy.from_hours(
            settings.first_contact_p1_hours,
            settings.first_contact_p2_hours,
            settings.first_contact_p3_hours,
        ),
        metrics=CaseworkMetrics(runtime.registry),
        source=runtime.name,
    )


async def _overdue_metric_loop(runtime: ServiceRuntime, cw: Casework, interval: float) -> None:
    while not runtime.stopping.is_set():
        try:
            await refresh_overdue_metric(runtime.sessions, cw)
        except Exception as exc:  # the store may be down: /ready says so; try again later
            log.warning("overdue metric not refreshed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.stopping.wait(), timeout=interval)


def _with_metric_loop(app: FastAPI, runtime: ServiceRuntime, cw: Casework, interval: float) -> None:
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        async with inner(app_):
            task = asyncio.create_task(
                _overdue_metric_loop(runtime, cw, interval), name="casework-overdue-metric"
            )
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.router.lifespan_context = lifespan


def create_app(settings: CaseworkSettings | None = None) -> FastAPI:
    settings = settings or CaseworkSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_casework.migrations")
    cw = build_casework(runtime, settings)
    register_subscribers(runtime, cw, fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms)

    def configure(app: FastAPI) -> None:
        app.state.casework = cw
        install_pages(app)
        _with_metric_loop(app, runtime, cw, settings.overdue_metric_interval_seconds)

    return runtime.create_app(
        title="CPU casework service",
        permissions=PERMISSIONS,
        routers=[router],
        configure=configure,
    )


def main() -> None:
    settings = CaseworkSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
