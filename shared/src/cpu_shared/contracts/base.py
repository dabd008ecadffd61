"""The base of every event model, the catalogue, and publish/parse helpers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_shared.messaging.consumer import InvalidEvent
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.outbox import enqueue
from cpu_shared.messaging.topics import Topic

# Field names that mean personal data. A field whose name contains one of these (as a whole
# word of its snake_case name) may not appear in an event read by reporting.
PERSONAL_FIELD_DENYLIST: frozenset[str] = frozenset(
    {
        "name",
        "names",
        "given_name",
        "family_name",
        "name_km",
        "full_name",
        "alias",
        "phone",
        "phones",
        "mobile",
        "email",
        "emails",
        "screen_name",
        "screen_names",
        "address",
        "village",
        "street",
        "house",
        "gps",
        "latitude",
        "longitude",
        "narrative",
        "statement",
        "description",
        "notes",
        "comment",
        "details",
        "date_of_birth",
        "dob",
        "birth",
        "birthdate",
        "ip",
        "ip_address",
        "passport",
        "national_id",
        "photo",
        "image",
        "file_name",
    }
)

EVENT_CATALOGUE: dict[tuple[str, int], type[EventData]] = {}


class EventData(BaseModel):
    """The ``data`` of one event type at one version. Subclasses declare where they go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: ClassVar[str]
    event_version: ClassVar[int] = 1
    topic: ClassVar[Topic]
    # Reporting reads every event topic; a model may opt out only if its topic is private.
    read_by_reporting: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" in cls.__dict__:
            key = (cls.event_type, cls.event_version)
            if key in EVENT_CATALOGUE:
                raise TypeError(f"event {key} is declared twice")
            EVENT_CATALOGUE[key] = cls


def event_model(event_type: str, version: int) -> type[EventData] | None:
    return EVENT_CATALOGUE.get((event_type, version))


def new_envelope(
    data: EventData,
    *,
    source: str,
    aggregate_id: str,
    aggregate_version: int,
    correlation_id: str,
) -> EventEnvelope:
    return EventEnvelope(
        event_type=data.event_type,
        event_version=data.event_version,
        source=source,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        correlation_id=correlation_id,
        data=data.model_dump(mode="json"),
    )


def publish(session: AsyncSession, data: EventData, **envelope_fields: Any) -> EventEnvelope:
    """Write ``data`` to its topic's outbox in the caller's transaction."""
    envelope = new_envelope(data, **envelope_fields)
    enqueue(session, data.topic.name, envelope)
    return envelope


def parse_event(envelope: EventEnvelope) -> EventData | None:
    """The typed data of a known event; None for types this code does not know (skip them).

    Raises pydantic's ValidationError for a known type whose data breaks its model, which
    the consumer dead-letters with the field-level reason.
    """
    model = event_model(envelope.event_type, envelope.event_version)
    if model is None:
        if any(k[0] == envelope.event_type for k in EVENT_CATALOGUE):
            raise InvalidEvent(
                f"event_version: {envelope.event_type} has no version {envelope.event_version}"
            )
        return None
    return model.model_validate(envelope.data)


_WORD = re.compile(r"[a-z0-9]+")


def personal_fields_in(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Dotted paths of fields (nested models included) whose names are on the deny-list."""
    for field_name, info in model.model_fields.items():
        path = f"{prefix}{field_name}"
        words = set(_WORD.findall(field_name.lower()))
        if field_name.lower() in PERSONAL_FIELD_DENYLIST or words & PERSONAL_FIELD_DENYLIST:
            yield path
        for arg in _nested_models(info.annotation):
            yield from personal_fields_in(arg, prefix=path + ".")


def _nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _nested_models(arg)
