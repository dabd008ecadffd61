"""Builds the forensics service process."""

from fastapi import FastAPI

from cpu_forensics.config import ForensicsSettings
from cpu_forensics.entrypoints.http import install_error_handlers, router
from cpu_forensics.entrypoints.stream import register_subscribers
from cpu_forensics.permissions import PERMISSIONS
from cpu_forensics.service_layer.context import Forensics
from cpu_forensics.service_layer.ledger import Verifier
from cpu_forensics.web.pages import build_ui
from cpu_shared.service import ServiceRuntime, serve

#: Requests carry ids, hashes and short texts: nothing near this. A file sent anyway (as a
#: base64 "description") is refused before it is read.
BODY_LIMIT = 64 * 1024


def create_app(settings: ForensicsSettings | None = None) -> FastAPI:
    settings = settings or ForensicsSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_forensics.migrations")
    fx = Forensics(runtime, settings)
    if not settings.ledger_dev_key_allowed:
        # Production: no key, no service (rather than a process that fails its first append).
        fx.signer  # noqa: B018
    register_subscribers(runtime, fx)
    ui, pages = build_ui(fx)

    def configure(app: FastAPI) -> None:
        app.state.forensics = fx
        app.state.ledger_verifier = Verifier(fx)
        install_error_handlers(app)
        ui.install(app, pages)

    return runtime.create_app(
        title="CPU forensics service",
        permissions=PERMISSIONS,
        routers=[router],
        configure=configure,
        body_limits={"/api/v1": BODY_LIMIT, "/ui": BODY_LIMIT},
    )


def main() -> None:
    settings = ForensicsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
