"""What forensics learns from ``casework.case.events``: which teams and province a case has,
so that investigators see the evidence of their own cases and no one else's (issue 4).

Forensics does not refuse an item whose case it has not heard of: evidence is often seized
before casework's event arrives, and refusing a registration would push officers to keep the
exhibit off the books. Until the case is known, its items are visible to the Forensic Science
Team, the people who hold them, and supervisors (see :mod:`.access`).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_forensics.service_layer.context import Forensics
from cpu_shared.contracts import parse_event
from cpu_shared.contracts.casework import CaseAssigned, CaseOpened
from cpu_shared.logging import get_logger
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.ordering import claim_version

log = get_logger(__name__)


async def on_case_event(fx: Forensics, session: AsyncSession, envelope: EventEnvelope) -> None:
    data = parse_event(envelope)
    if not isinstance(data, CaseOpened | CaseAssigned):
        return  # other case events say nothing about who may see evidence
    # Order matters (a reassignment after the opening): apply only what is newer.
    if not await claim_version(
        session,
        stream="forensics.case-visibility",
        aggregate_id=envelope.aggregate_id,
        version=envelope.aggregate_version,
    ):
        return
    repo = fx.repository(session)
    if isinstance(data, CaseOpened):
        await repo.remember_case(
            data.case_id,
            teams=list(data.teams),
            province_code=data.province_code,
            now=fx.now(),
            replace_teams=False,
        )
    else:
        await repo.remember_case(
            data.case_id,
            teams=[data.team],
            province_code=data.province_code,
            now=fx.now(),
            replace_teams=data.reassignment,
        )
    log.info("case visibility recorded", event_type=data.event_type)
