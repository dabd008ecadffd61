"""Builds the forensics service process."""

from fastapi import FastAPI

from cpu_forensics.config import ForensicsSettings
from cpu_forensics.entrypoints.http import router
from cpu_forensics.entrypoints.stream import register_subscribers
from cpu_forensics.permissions import PERMISSIONS
from cpu_shared.service import ServiceRuntime, serve


def create_app(settings: ForensicsSettings | None = None) -> FastAPI:
    settings = settings or ForensicsSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_forensics.migrations")
    register_subscribers(runtime)
    return runtime.create_app(
        title="CPU forensics service", permissions=PERMISSIONS, routers=[router]
    )


def main() -> None:
    settings = ForensicsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
