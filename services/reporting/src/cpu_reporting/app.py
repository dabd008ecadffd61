"""Builds the reporting service process."""

from fastapi import FastAPI

from cpu_reporting.config import ReportingSettings
from cpu_reporting.entrypoints.http import router
from cpu_reporting.entrypoints.stream import register_subscribers
from cpu_reporting.permissions import PERMISSIONS
from cpu_reporting.web.pages import router as pages_router
from cpu_reporting.web.pages import ui
from cpu_shared.service import ServiceRuntime, serve


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_reporting.migrations")
    register_subscribers(runtime)
    return runtime.create_app(
        title="CPU reporting service",
        permissions=PERMISSIONS,
        routers=[router],
        configure=lambda app: ui.install(app, pages_router),
    )


def main() -> None:
    settings = ReportingSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
