"""Folding events into the projection: the handler every consumer (and the rebuild) runs.

For a batch: refuse anything carrying a deny-listed field (dead-lettered with the field names,
never stored), parse the rest, load the facts of the aggregates they touch, fold the events in,
and add the difference between each aggregate's figures after and before to the rollups, all in
the consumer's transaction (which also records the inbox rows). Because folding is idempotent
and order-independent (:mod:`..domain.facts`), a redelivered event adds nothing and an event
that arrives before the one it follows is counted as soon as it can be.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_reporting.adapters.store import (
    AggregateKey,
    apply_delta,
    load_facts,
    save_facts,
    take_write_lock,
)
from cpu_reporting.domain.contributions import Delta, contribution
from cpu_reporting.domain.facts import Facts, InvalidFact, aggregate_of, new_facts
from cpu_reporting.domain.privacy import rejection_reason
from cpu_shared.contracts import parse_event
from cpu_shared.contracts.base import EventData
from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.messaging.envelope import EventEnvelope

Prepared = tuple[AggregateKey, EventData, int, str]


def accept(envelope: EventEnvelope) -> EventData | None:
    """The typed data of an event reporting may store; None for a type it does not read.

    Raises InvalidEvent when a deny-listed field is present (at any depth), and pydantic's
    ValidationError when a known event breaks its contract: both are dead-lettered.
    """
    reason = rejection_reason(envelope.data)
    if reason is not None:
        raise InvalidEvent(reason)
    return parse_event(envelope)


def prepare(envelopes: Iterable[EventEnvelope]) -> list[Prepared]:
    prepared: list[Prepared] = []
    for envelope in envelopes:
        data = accept(envelope)
        if data is None:
            continue
        key = aggregate_of(data)
        if key is None:
            continue
        prepared.append((key, data, envelope.aggregate_version, str(envelope.event_id)))
    return prepared


def fold(facts: Facts, data: EventData, version: int, event_id: str) -> None:
    try:
        facts.apply(data, version, event_id)
    except InvalidFact as exc:
        raise InvalidEvent(str(exc)) from None


async def project(session: AsyncSession, envelopes: Sequence[EventEnvelope]) -> None:
    """Apply a batch of envelopes to the projection in the caller's transaction."""
    prepared = prepare(envelopes)
    if not prepared:
        return
    await take_write_lock(session)
    keys = sorted({key for key, *_ in prepared})
    held = await load_facts(session, keys)
    before = {key: contribution(held.get(key)) for key in keys}
    current: dict[AggregateKey, Facts] = {key: held.get(key) or new_facts(*key) for key in keys}
    for key, data, version, event_id in prepared:
        fold(current[key], data, version, event_id)
    delta = Delta()
    for key in keys:
        delta.add(before[key], contribution(current[key]))
    await save_facts(session, current)
    await apply_delta(session, delta)


async def project_one(session: AsyncSession, envelope: EventEnvelope) -> None:
    await project(session, [envelope])
