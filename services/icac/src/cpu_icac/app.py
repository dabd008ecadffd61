"""Builds the icac service process."""

from fastapi import FastAPI

from cpu_icac.config import IcacSettings
from cpu_icac.entrypoints.http import router
from cpu_icac.entrypoints.stream import register_subscribers
from cpu_icac.permissions import PERMISSIONS
from cpu_shared.service import ServiceRuntime, serve


def create_app(settings: IcacSettings | None = None) -> FastAPI:
    settings = settings or IcacSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_icac.migrations")
    register_subscribers(runtime)
    return runtime.create_app(title="CPU icac service", permissions=PERMISSIONS, routers=[router])


def main() -> None:
    settings = IcacSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
