"""Event contracts: one versioned model per event type, and the catalogue of them all.

Every id in these events is a pseudonym (an HMAC of the internal id under a key the reporting
service never has), every other field a code, a date or a count: all four event topics are
read by reporting, so none of them may carry personal data. ``tests`` check every model's
fields against :data:`PERSONAL_FIELD_DENYLIST`.
"""

from cpu_shared.contracts import casework, forensics, icac, intake  # noqa: F401  (registers)
from cpu_shared.contracts.base import (
    EVENT_CATALOGUE,
    PERSONAL_FIELD_DENYLIST,
    EventData,
    event_model,
    new_envelope,
    parse_event,
    personal_fields_in,
    publish,
)

__all__ = [
    "EVENT_CATALOGUE",
    "PERSONAL_FIELD_DENYLIST",
    "EventData",
    "event_model",
    "new_envelope",
    "parse_event",
    "personal_fields_in",
    "publish",
]
