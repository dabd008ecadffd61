"""The ways the forensics domain says no.

Two kinds of refusal, so the HTTP layer can answer without knowing any rule:

* :class:`InvalidValue` (a ``ValueError``): the input itself is malformed (a SHA-256 that is not
  64 hex digits, a naive datetime, an empty purpose). Answer 422 naming ``field``.
* :class:`DomainRuleBroken` and its subclasses: the input is well formed but the current state
  forbids it (only the custodian may hand over, nothing moves after disposal, ...). Answer 409
  with ``{"detail": {"rule": e.rule, "message": e.message}}``. ``rule`` is a stable name from
  :class:`CustodyRule` or :class:`AnalysisRule`; clients and tests match on it, never on the
  message.
"""

from __future__ import annotations

from enum import StrEnum


class CustodyRule(StrEnum):
    """Every custody invariant, by the name a 409 carries."""

    NOT_CURRENT_CUSTODIAN = "not_current_custodian"  # only the holder can hand the item over
    CUSTODY_GAP = "custody_gap"  # the receiver of one step is the giver of the next; no holes
    ITEM_DISPOSED = "item_disposed"  # nothing moves after released/destroyed
    SEAL_CHANGE_NEEDS_REASON = "seal_change_needs_reason"  # new seal or worse condition: say why
    TRANSFER_ALREADY_PENDING = "transfer_already_pending"  # one open handover at a time
    NOT_THE_RECEIVER = "not_the_receiver"  # only the named receiver accepts
    TIME_GOES_BACKWARDS = "time_goes_backwards"  # a step cannot predate the previous one
    TIME_IN_FUTURE = "time_in_future"  # a step cannot be dated after it was recorded
    TRANSFER_NOT_PENDING = "transfer_not_pending"  # accept/cancel of a transfer that is not open
    SELF_TRANSFER = "self_transfer"  # giver and receiver are the same person: no second witness
    NOT_PARTY_TO_TRANSFER = "not_party_to_transfer"  # only giver (withdraw) or receiver (refuse)
    RETURN_WITHOUT_DEPARTURE = "return_without_departure"  # `returned` needs a lab/court trip
    EVENT_OF_ANOTHER_ITEM = "event_of_another_item"  # a chain mixes two items' events
    DERIVED_FROM_OTHER_CASE = "derived_from_other_case"  # a derived item stays in its parent's case
    DERIVATION_NOT_POSSIBLE = "derivation_not_possible"  # e.g. a forensic image of a blood swab


class AnalysisRule(StrEnum):
    """Every lab-analysis rule, by the name a 409 carries."""

    ITEM_DISPOSED = "item_disposed"
    ANALYSIS_NOT_APPLICABLE = "analysis_not_applicable"  # e.g. toxicology on a phone
    ANALYSIS_WRONG_STATE = "analysis_wrong_state"  # e.g. a result before anyone was assigned
    NOT_THE_ANALYST = "not_the_analyst"  # only the assigned analyst examines and reports
    ANALYST_NOT_CUSTODIAN = "analyst_not_custodian"  # nobody examines an item they do not hold
    SIGNER_IS_ANALYST = "signer_is_analyst"  # sign-off is a second person's review
    UNKNOWN_RESULT_CODE = "unknown_result_code"  # result codes are a closed list per type
    TIME_GOES_BACKWARDS = "time_goes_backwards"


class DomainRuleBroken(Exception):
    """A well-formed request that the current state forbids (HTTP 409)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = str(rule)
        self.message = message


class CustodyRuleBroken(DomainRuleBroken):
    """A custody invariant refused the step; ``rule`` is a :class:`CustodyRule` value."""


class AnalysisRuleBroken(DomainRuleBroken):
    """A lab-analysis rule refused the step; ``rule`` is an :class:`AnalysisRule` value."""


class InvalidValue(ValueError):
    """A malformed input value (HTTP 422); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
