"""Events on ``icac.tip.events``. Raw reports on ``icac.tips.inbound`` are not enveloped."""

from datetime import datetime

from pydantic import Field

from cpu_shared.contracts.base import EventData
from cpu_shared.contracts.codes import (
    CountryCode,
    IncidentType,
    ProvinceCode,
    Pseudonym,
    TipDisposition,
    TipPriority,
)
from cpu_shared.messaging.topics import TIP_EVENTS


class TipReceived(EventData):
    event_type = "tip.received"
    topic = TIP_EVENTS

    tip_id: Pseudonym
    provider: str = Field(max_length=60, pattern=r"^(ncmec|hsi|interpol|esp:[a-z0-9_.\-]+)$")
    incident_type: IncidentType
    received_at: datetime
    country_code: CountryCode | None = None
    province_code: ProvinceCode | None = None


class TipTriaged(EventData):
    event_type = "tip.triaged"
    topic = TIP_EVENTS

    tip_id: Pseudonym
    priority: TipPriority
    reason_codes: list[str] = Field(default_factory=list)
    cluster_id: Pseudonym | None = None
    cluster_size: int = Field(default=1, ge=1)
    in_jurisdiction: bool
    province_code: ProvinceCode | None = None
    hash_match_count: int = Field(default=0, ge=0)


class TipEscalated(EventData):
    event_type = "tip.escalated"
    topic = TIP_EVENTS

    tip_id: Pseudonym
    priority: TipPriority
    incident_type: IncidentType
    province_code: ProvinceCode | None = None
    cluster_id: Pseudonym | None = None
    victim_count: int = Field(default=0, ge=0)
    youngest_victim_age: int | None = Field(default=None, ge=0, le=17)
    escalated_at: datetime


class TipClosed(EventData):
    event_type = "tip.closed"
    topic = TIP_EVENTS

    tip_id: Pseudonym
    disposition: TipDisposition
    closed_at: datetime
