"""Builds the intake service process."""

import gc

from fastapi import FastAPI

from cpu_intake.config import IntakeSettings
from cpu_intake.domain.triage import load_rules
from cpu_intake.entrypoints.http import install_error_handlers, router
from cpu_intake.entrypoints.stream import register_subscribers
from cpu_intake.permissions import PERMISSIONS
from cpu_intake.service_layer.referrals import Intake
from cpu_intake.web.pages import build_ui
from cpu_shared.messaging.outbox import KafkaOutboxProducer
from cpu_shared.service import ServiceRuntime, serve


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings, migrations_package="cpu_intake.migrations")
    # Two events per referral: the relay publishes through a plain idempotent aiokafka
    # producer (acks=all) of its own, not message by message through the broker's framework
    # layers, in cycles at most every 10 ms while referrals flow (a cycle's round trips cost
    # the same for one referral's events as for a hundred's).
    runtime.relay.use_producer(
        KafkaOutboxProducer(settings.kafka_bootstrap_servers, client_id=f"{runtime.name}-outbox"),
        min_cycle_interval=0.01,
    )
    intake = Intake(
        runtime,
        keyring=lambda: runtime.keyring,
        # Read at start: a broken rule file stops the service rather than mis-triaging.
        rules=load_rules(settings.triage_rules_file),
        candidate_limit=settings.match_candidate_limit,
        registry=runtime.registry,
    )
    register_subscribers(runtime, intake)
    ui, pages = build_ui()

    def configure(app: FastAPI) -> None:
        app.state.intake = intake
        install_error_handlers(app)
        ui.install(app, pages)

    return runtime.create_app(
        title="CPU intake service",
        permissions=PERMISSIONS,
        routers=[router],
        configure=configure,
    )


def main() -> None:
    settings = IntakeSettings()
    app = create_app(settings)
    # Everything built so far lives as long as the process: out of the collector's sight (the
    # older-generation collections no longer walk it), and young-generation collections less
    # often (a request allocates thousands of objects; about 1.5% of the CPU went to them).
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
    serve(app, settings)


if __name__ == "__main__":
    main()
