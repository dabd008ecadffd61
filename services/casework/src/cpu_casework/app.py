"""Builds the casework service process."""

from fastapi import FastAPI

from cpu_casework.config import CaseworkSettings
from cpu_casework.entrypoints.http import router
from cpu_casework.entrypoints.stream import register_subscribers
from cpu_casework.permissions import PERMISSIONS
from cpu_shared.service import ServiceRuntime, serve


def create_app(settings: CaseworkSettings | None = None) -> FastAPI:
    settings = settings or CaseworkSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_casework.migrations")
    register_subscribers(runtime)
    return runtime.create_app(
        title="CPU casework service", permissions=PERMISSIONS, routers=[router]
    )


def main() -> None:
    settings = CaseworkSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
