"""AsyncAPI documents of the services, generated from the code that runs.

Each service declares the topic it publishes (its envelope with a ``data`` union of that
topic's event models) and the consumers it runs. The generated document is committed beside
the service (``services/<name>/asyncapi.json``); a test fails when the two disagree.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field, create_model

from cpu_shared.contracts import EVENT_CATALOGUE, EventData
from cpu_shared.messaging.envelope import EventEnvelope
from cpu_shared.messaging.topics import Topic


def envelope_schema(topic: Topic) -> type[BaseModel]:
    """The envelope of CONTRACT.md section 4 with ``data`` typed by the topic's events."""
    models = sorted(
        (m for m in EVENT_CATALOGUE.values() if m.topic.name == topic.name),
        key=lambda m: (m.event_type, m.event_version),
    )
    if not models:
        return EventEnvelope
    variants = tuple(_tagged(m) for m in models)
    data_type: Any = variants[0] if len(variants) == 1 else Union[variants]  # noqa: UP007
    name = "".join(part.capitalize() for part in topic.name.replace("-", ".").split(".")) + "Event"
    return create_model(name, __base__=EventEnvelope, data=(data_type, ...))


def _tagged(model: type[EventData]) -> type[BaseModel]:
    # Name each variant after its event type so the document reads like the contract.
    name = "".join(p.capitalize() for p in model.event_type.replace("_", ".").split(".")) + (
        f"V{model.event_version}"
    )
    return create_model(
        name, __base__=model, __doc__=f"`{model.event_type}` v{model.event_version}"
    )


def declare_publisher(broker: KafkaBroker, topic: Topic) -> None:
    """Document what this service publishes; the outbox relay does the publishing."""
    broker.publisher(
        topic.name,
        title=f"{topic.name}:publish",
        description=f"{topic.description}. Published through the transactional outbox, "
        "keyed by aggregate id.",
        schema=envelope_schema(topic),
    )


def asyncapi_document(broker: KafkaBroker, *, service: str) -> dict[str, Any]:
    spec = AsyncAPI(
        broker,
        title=f"CPU {service} service",
        version="1.0.0",
        description=f"Kafka topics the {service} service publishes and consumes.",
    )
    document = spec.to_specification().to_jsonable()
    # The broker address is deployment configuration, not part of the contract.
    for server in document.get("servers", {}).values():
        server["host"] = "kafka:9092"
    return json.loads(json.dumps(document, sort_keys=True))


__all__ = ["Field", "Literal", "asyncapi_document", "declare_publisher", "envelope_schema"]
