"""Builds the intake service process."""

from fastapi import FastAPI

from cpu_intake.config import IntakeSettings
from cpu_intake.entrypoints.http import router
from cpu_intake.entrypoints.stream import register_subscribers
from cpu_intake.permissions import PERMISSIONS
from cpu_shared.service import ServiceRuntime, serve


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_intake.migrations")
    register_subscribers(runtime)
    return runtime.create_app(title="CPU intake service", permissions=PERMISSIONS, routers=[router])


def main() -> None:
    settings = IntakeSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
