"""The event envelope of CONTRACT.md section 4."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventEnvelope(BaseModel):
    """Every event on every topic but ``icac.tips.inbound`` travels in this envelope."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str = Field(min_length=1, max_length=100)
    event_version: int = Field(ge=1)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    source: str = Field(min_length=1, max_length=50)
    aggregate_id: str = Field(min_length=1, max_length=200)
    aggregate_version: int = Field(ge=0)
    correlation_id: str = Field(min_length=1, max_length=200)
    data: dict[str, Any]

    @field_serializer("occurred_at")
    def _rfc3339_utc(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        return cls.model_validate_json(raw)
