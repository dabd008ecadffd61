"""Small value rules shared by the casework concepts: ids, codes, and Cambodian calendar dates.

Times are timezone-aware datetimes (UTC in practice); a naive datetime is refused rather than
guessed. Calendar dates (an arrest, a charge, a judgment, a service) are dates in Cambodia:
"not in the future" and "not before the case was opened" compare them with the Cambodian date
of the clock and of the opening, so an officer entering today's arrest at 06:00 in Phnom Penh
(23:00 UTC the day before) is not refused. Cambodia keeps UTC+07:00 all year (no daylight
saving), so a fixed offset is exact and needs no time-zone database.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import get_args

from cpu_casework.domain.errors import DateBeforeCaseOpened, DateInFuture, InvalidValue
from cpu_shared.contracts.codes import Concern, Priority, Sex, Team

CAMBODIA_TZ = timezone(timedelta(hours=7), "ICT")

PRIORITIES: tuple[str, ...] = get_args(Priority)
TEAMS: tuple[str, ...] = get_args(Team)
CONCERNS: tuple[str, ...] = get_args(Concern)
SEXES: tuple[str, ...] = get_args(Sex)

_PROVINCE = re.compile(r"^(0[1-9]|1[0-9]|2[0-5])$")
# Reason codes travel in events (max 50 characters there): lower snake case, never free text.
_REASON_CODE = re.compile(r"^[a-z][a-z0-9_]{1,49}$")
_MAX_ID = 128


def require_id(value: object, field: str) -> str:
    """An opaque identifier: a non-empty string without surrounding blanks."""
    if not isinstance(value, str) or not value or value != value.strip() or len(value) > _MAX_ID:
        raise InvalidValue(field, f"must be a non-empty identifier of at most {_MAX_ID} chars")
    return value


def require_province(value: object, field: str = "province_code") -> str:
    if not isinstance(value, str) or not _PROVINCE.match(value):
        raise InvalidValue(field, "must be a Cambodian province code, 01 to 25")
    return value


def require_choice(value: object, choices: tuple[str, ...], field: str) -> str:
    if value not in choices:
        raise InvalidValue(field, f"must be one of {', '.join(choices)}")
    return str(value)


def require_reason_code(value: object, field: str = "reason_code") -> str:
    if not isinstance(value, str) or not _REASON_CODE.match(value):
        raise InvalidValue(field, "must be a lower-case code such as suspect_located (2-50 chars)")
    return value


def optional_text(value: object, field: str) -> str | None:
    """Free text (kept on the case, never put in an event); blank counts as absent."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue(field, "must be text")
    return value.strip() or None


def require_aware(value: object, field: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValue(field, "must be a timezone-aware datetime")
    return value.astimezone(UTC)


def require_date(value: object, field: str) -> date:
    # datetime is a subclass of date: refuse it so a time is never silently truncated.
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidValue(field, "must be a calendar date")
    return value


def cambodian_date(moment: datetime) -> date:
    """The calendar date in Cambodia at ``moment``."""
    return moment.astimezone(CAMBODIA_TZ).date()


def check_fact_date(
    value: object, field: str, *, now: datetime, opened_at: datetime | None = None
) -> date:
    """A fact's date: not after today in Cambodia, nor before the case's opening date there."""
    day = require_date(value, field)
    today = cambodian_date(now)
    if day > today:
        raise DateInFuture(field, day, today)
    if opened_at is not None:
        opened_on = cambodian_date(opened_at)
        if day < opened_on:
            raise DateBeforeCaseOpened(field, day, opened_on)
    return day
