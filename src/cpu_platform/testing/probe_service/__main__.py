"""``python -m cpu_platform.testing.probe_service``: run the probe as its own process."""

import asyncio

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_shared.config import ServiceSettings
from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.outbox import enqueue
from cpu_shared.security.auth import Principal
from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable
from cpu_shared.service import ServiceRuntime, serve

EFFECT = sa.table("probe_effect", sa.column("event_id"), sa.column("aggregate_id"))
WRITE = sa.table("probe_write", sa.column("id"), sa.column("aggregate_id"), sa.column("seq"))


class ProbeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PROBE_", extra="ignore")

    service_name: str = "probe"
    topic_in: str = "probe.in"
    topic_out: str = "probe.out"
    batch: bool = False
    # Seconds each event takes, to catch a process in the middle of its work.
    handler_delay: float = 0.0
    # Events whose data has "poison": true are refused unless this is set (the "fix").
    accept_poison: bool = False


class Write(BaseModel):
    aggregate_id: str
    seq: int


def build(settings: ProbeSettings) -> tuple[FastAPI, ServiceRuntime]:
    runtime = ServiceRuntime(
        settings, migrations_package="cpu_platform.testing.probe_service.migrations"
    )

    async def apply(session: AsyncSession, event: EventEnvelope) -> None:
        if event.data.get("poison") and not settings.accept_poison:
            raise InvalidEvent("data.poison: refused by the probe's rules")
        if settings.handler_delay:
            await asyncio.sleep(settings.handler_delay)
        await session.execute(
            sa.insert(EFFECT).values(event_id=str(event.event_id), aggregate_id=event.aggregate_id)
        )

    async def apply_batch(session: AsyncSession, events: list[EventEnvelope]) -> None:
        for event in events:
            if event.data.get("poison") and not settings.accept_poison:
                raise InvalidEvent("data.poison: refused by the probe's rules")
        rows = [{"event_id": str(e.event_id), "aggregate_id": e.aggregate_id} for e in events]
        await session.execute(sa.insert(EFFECT), rows)

    runtime.consumer(
        settings.topic_in,
        "probe",
        apply,
        batch=settings.batch,
        handle_batch=apply_batch if settings.batch else None,
    )
    router = APIRouter()
    permissions = PermissionTable("probe", {"probe.write": ["investigator"], **AUDIT_GRANTS})

    @router.post("/writes", status_code=201)
    async def write(
        body: Write, _who: Principal = Depends(permissions.require("probe.write"))
    ) -> dict[str, str]:
        async with runtime.transaction() as session:
            await session.execute(
                sa.insert(WRITE).values(aggregate_id=body.aggregate_id, seq=body.seq)
            )
            envelope = EventEnvelope(
                event_type="probe.written",
                event_version=1,
                source="probe",
                aggregate_id=body.aggregate_id,
                aggregate_version=body.seq,
                correlation_id="probe",
                data={"seq": body.seq},
            )
            enqueue(session, settings.topic_out, envelope)
        return {"event_id": str(envelope.event_id)}

    return runtime.create_app(title="probe", permissions=permissions, routers=[router]), runtime


def main() -> None:
    settings = ProbeSettings()
    app, _ = build(settings)
    serve(app, settings)


if __name__ == "__main__":
    main()
