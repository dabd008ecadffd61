"""Domain errors of casework.

Two families, so the HTTP layer can answer without knowing every rule:

* :class:`CaseworkError` - a rule of the case refuses the command as things stand (answer 409,
  with :attr:`CaseworkError.rule` as the rule's name).
* :class:`InvalidValue` - the command itself is malformed: an unknown code, a missing reason, a
  date in the future (answer 422). It is also a ``ValueError``.

Errors that belong to one concept live in that concept's module (``IllegalTransition`` in
``lifecycle``, ``UnknownOffence`` in ``offences``...); the ones shared by several are here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import ClassVar


class CaseworkError(Exception):
    """A casework rule refused the command."""

    rule: ClassVar[str] = "casework_rule"


class InvalidValue(CaseworkError, ValueError):
    """A value of the command breaks its format or range."""

    rule = "invalid_value"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DateInFuture(InvalidValue):
    rule = "date_in_future"

    def __init__(self, field: str, value: date, today: date) -> None:
        super().__init__(field, f"{value.isoformat()} is after today ({today.isoformat()})")
        self.value = value
        self.today = today


class DateBeforeCaseOpened(InvalidValue):
    rule = "date_before_case_opened"

    def __init__(self, field: str, value: date, opened_on: date) -> None:
        super().__init__(
            field, f"{value.isoformat()} is before the case was opened ({opened_on.isoformat()})"
        )
        self.value = value
        self.opened_on = opened_on


class ReasonRequired(InvalidValue):
    rule = "reason_required"


class NotAllowedInStatus(CaseworkError):
    """The action cannot be recorded while the case is in its current status."""

    rule = "not_allowed_in_status"

    def __init__(self, action: str, status: str, allowed: Iterable[str]) -> None:
        self.action = action
        self.status = status
        self.allowed = sorted(allowed)
        super().__init__(
            f"{action} cannot be recorded while the case is {status}; "
            f"allowed in: {', '.join(self.allowed)}"
        )


class UnknownChild(CaseworkError):
    rule = "unknown_child"

    def __init__(self, child_id: str) -> None:
        super().__init__(f"child {child_id} is not on this case")
        self.child_id = child_id


class UnknownSuspect(CaseworkError):
    rule = "unknown_suspect"

    def __init__(self, suspect_id: str) -> None:
        super().__init__(f"suspect {suspect_id} is not on this case")
        self.suspect_id = suspect_id


class DuplicateRecord(CaseworkError):
    """The case already holds a different record where only one may be."""

    rule = "duplicate_record"
