"""A referral: the report of one or more children at risk, as the intake officer records it.

:class:`ReferralCreate` is the body of ``POST /api/v1/referrals`` (CONTRACT.md section 6),
validated with messages an officer understands: each error's ``type`` is a code of
:data:`cpu_intake.domain.messages.MESSAGES` and its ``msg`` the English text; use
:func:`~cpu_intake.domain.messages.officer_errors` for both languages and the field path.

Checks that depend on the clock compare with ``context={"now": <aware datetime>}`` when the
caller passes it to ``model_validate`` (tests, replays), else with the current time.

:class:`Referral` is the aggregate: identity, human reference, status lifecycle, triage
result, match decisions, and the domain events of each change.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Any, get_args
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cpu_intake.domain import khmer
from cpu_intake.domain.decisions import (
    MatchDecision,
    MatchDecisionCreate,
    MatchDecisionKind,
    decide_match,
)
from cpu_intake.domain.events import (
    DomainEvent,
    MatchDecided,
    ReferralCaseOpened,
    ReferralLinked,
    ReferralSubmitted,
    ReferralTriaged,
    ReferralWithdrawn,
)
from cpu_intake.domain.messages import (
    OfficerFacingError,
    Problem,
    custom_error,
    validation_error,
)
from cpu_intake.domain.phone import InvalidPhoneNumber, normalise_phone
from cpu_intake.domain.provinces import province
from cpu_intake.domain.triage import TriageResult
from cpu_shared.contracts.codes import Concern, ReferralSource, Sex

# Cambodia has kept UTC+7 without daylight saving time; "today" and ages are counted there.
CAMBODIA_TZ = timezone(timedelta(hours=7), "ICT")
MAX_CLOCK_SKEW = timedelta(minutes=5)  # a received_at this far ahead of our clock is accepted
ADULT_AGE = 18
MAX_AGE_ESTIMATE = ADULT_AGE - 1
MAX_PERPETRATOR_AGE = 120
NARRATIVE_MAX_LENGTH = 10_000
NAME_MAX_LENGTH = 100
PLACE_MAX_LENGTH = 100
RELATIONSHIP_MAX_LENGTH = 100
MAX_CHILDREN = 20
MAX_PERPETRATORS = 20
MAX_CONCERNS = 20

SOURCES: tuple[str, ...] = get_args(ReferralSource)
CONCERNS: tuple[str, ...] = get_args(Concern)


def _now(info: ValidationInfo) -> datetime:
    now = (info.context or {}).get("now")
    return now if isinstance(now, datetime) else datetime.now(UTC)


def cambodia_date(moment: datetime) -> date:
    """The calendar day in Cambodia at ``moment`` (timezone-aware)."""
    return moment.astimezone(CAMBODIA_TZ).date()


def age_on(date_of_birth: date, day: date) -> int:
    """Completed years of age on ``day``."""
    before_birthday = (day.month, day.day) < (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - before_birthday


def _blank_to_none(value: Any) -> Any:
    # HTML forms send "" for a field left empty: that is "not given", not an empty name.
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _known(choices: tuple[str, ...], code: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, str) and value in choices:
            return value
        raise custom_error(code, value=str(value)[:50])

    return BeforeValidator(check)


def _province_code(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:02d}"
    if isinstance(value, str):
        value = value.strip()
        if len(value) == 1 and value.isdigit():
            value = "0" + value
        if province(value) is not None:
            return value
    raise custom_error("unknown_province", code=str(value)[:10])


def _limited(max_length: int) -> StringConstraints:
    return StringConstraints(max_length=max_length)


# Optional free text: "" from a form means "not given"; too long is ``text_too_long``.
OptionalName = Annotated[
    Annotated[str, _limited(NAME_MAX_LENGTH)] | None, BeforeValidator(_blank_to_none)
]
OptionalPlace = Annotated[
    Annotated[str, _limited(PLACE_MAX_LENGTH)] | None, BeforeValidator(_blank_to_none)
]
OptionalRelationship = Annotated[
    Annotated[str, _limited(RELATIONSHIP_MAX_LENGTH)] | None, BeforeValidator(_blank_to_none)
]
SourceCode = Annotated[ReferralSource, _known(SOURCES, "unknown_source")]
ConcernCode = Annotated[Concern, _known(CONCERNS, "unknown_concern")]
ProvinceCode = Annotated[str, BeforeValidator(_province_code)]

_INPUT = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Reporter(BaseModel):
    """Who reported. An anonymous reporter leaves no name or phone number."""

    model_config = _INPUT

    anonymous: bool = False
    name: OptionalName = None
    phone: Annotated[str | None, BeforeValidator(_blank_to_none)] = None
    relationship: OptionalRelationship = None

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalise_phone(value)
        except InvalidPhoneNumber:
            raise custom_error("invalid_phone", value=value[:30]) from None

    @model_validator(mode="after")
    def _identity(self) -> Reporter:
        if self.anonymous:
            problems: list[Problem] = [
                ((name,), "anonymous_reporter_identified", getattr(self, name), {})
                for name in ("name", "phone")
                if getattr(self, name) is not None
            ]
            if problems:
                raise validation_error("Reporter", problems)
        elif self.name is None and self.phone is None:
            raise validation_error("Reporter", [(("name",), "reporter_unidentified", None, {})])
        return self


class Child(BaseModel):
    """A child the referral is about. Names may be unknown; a date of birth or an estimated
    age is required (intake is for children, and matching needs one of them)."""

    model_config = _INPUT

    given_name: OptionalName = None
    family_name: OptionalName = None
    name_km: OptionalName = None
    sex: Sex = "unknown"
    date_of_birth: date | None = None
    age_estimate: int | None = None
    province_code: ProvinceCode
    district: OptionalPlace = None
    commune: OptionalPlace = None
    village: OptionalPlace = None

    @field_validator("name_km")
    @classmethod
    def _khmer_script(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not khmer.is_khmer_name(value):
            raise custom_error("name_km_not_khmer")
        return khmer.clean(value)

    @field_validator("age_estimate")
    @classmethod
    def _child_age(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_AGE_ESTIMATE:
            raise custom_error("age_out_of_range")
        return value

    @field_validator("date_of_birth")
    @classmethod
    def _born(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and value > cambodia_date(_now(info)):
            raise custom_error("date_of_birth_in_future")
        return value

    @model_validator(mode="after")
    def _age_known(self) -> Child:
        if self.date_of_birth is None and self.age_estimate is None:
            raise validation_error(
                "Child", [(("date_of_birth",), "age_or_date_of_birth_required", None, {})]
            )
        return self

    def age_on(self, day: date) -> int | None:
        """Age in years on ``day``: from the date of birth if known, else the estimate."""
        if self.date_of_birth is not None:
            return age_on(self.date_of_birth, day)
        return self.age_estimate


class AllegedPerpetrator(BaseModel):
    model_config = _INPUT

    name: OptionalName = None
    relationship: OptionalRelationship = None
    age_estimate: int | None = None
    has_access_to_child: bool | None = None  # None: not known

    @field_validator("age_estimate")
    @classmethod
    def _age(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value <= MAX_PERPETRATOR_AGE:
            raise custom_error("perpetrator_age_out_of_range")
        return value


class ReferralCreate(BaseModel):
    """The body of ``POST /api/v1/referrals``."""

    model_config = _INPUT

    source: SourceCode
    received_at: datetime
    reporter: Reporter
    children: Annotated[list[Child], Field(max_length=MAX_CHILDREN)]
    concerns: Annotated[list[ConcernCode], Field(max_length=MAX_CONCERNS)]
    alleged_perpetrators: Annotated[
        list[AllegedPerpetrator], Field(max_length=MAX_PERPETRATORS)
    ] = Field(default_factory=list)
    narrative: Annotated[str, Field(json_schema_extra={"maxLength": NARRATIVE_MAX_LENGTH})] = ""
    immediate_danger: bool = False
    injuries: bool = False

    @field_validator("received_at")
    @classmethod
    def _received(cls, value: datetime, info: ValidationInfo) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise custom_error("received_at_no_timezone")
        if value > _now(info) + MAX_CLOCK_SKEW:
            raise custom_error("received_at_in_future")
        return value.astimezone(UTC)

    @field_validator("children")
    @classmethod
    def _some_children(cls, value: list[Child]) -> list[Child]:
        if not value:
            raise custom_error("no_children")
        return value

    @field_validator("concerns")
    @classmethod
    def _some_concerns(cls, value: list[str]) -> list[str]:
        if not value:
            raise custom_error("no_concerns")
        return list(dict.fromkeys(value))  # repeats removed, first-given order kept

    @field_validator("narrative")
    @classmethod
    def _narrative_length(cls, value: str) -> str:
        if len(value) > NARRATIVE_MAX_LENGTH:
            raise custom_error("narrative_too_long", max_length=NARRATIVE_MAX_LENGTH)
        return value

    @model_validator(mode="after")
    def _children_on_received_day(self) -> ReferralCreate:
        received = self.received_on
        problems: list[Problem] = []
        for index, child in enumerate(self.children):
            dob = child.date_of_birth
            if dob is None:
                continue
            loc = ("children", index, "date_of_birth")
            if dob > received:
                problems.append((loc, "date_of_birth_after_received", dob.isoformat(), {}))
            elif age_on(dob, received) >= ADULT_AGE:
                problems.append((loc, "date_of_birth_adult", dob.isoformat(), {}))
        if problems:
            raise validation_error("ReferralCreate", problems)
        return self

    @property
    def received_on(self) -> date:
        """The day in Cambodia the referral was received; ages are counted on this day."""
        return cambodia_date(self.received_at)


# --- human reference -------------------------------------------------------------------------

_REFERENCE = re.compile(r"^REF-(\d{4})-(\d{6})$")


def format_reference(year: int, sequence: int) -> str:
    """``REF-<year>-<6-digit sequence>``: ``format_reference(2026, 123)`` is
    ``"REF-2026-000123"``. The sequence (1 to 999999, per year) comes from the store."""
    if not 2000 <= year <= 9999:
        raise ValueError(f"reference year out of range: {year}")
    if not 1 <= sequence <= 999_999:
        raise ValueError(f"reference sequence out of range: {sequence}")
    return f"REF-{year:04d}-{sequence:06d}"


def parse_reference(reference: str) -> tuple[int, int]:
    """(year, sequence) of a reference typed by an officer (spaces and case forgiven)."""
    match = _REFERENCE.match(reference.strip().upper())
    if match is None or int(match[1]) < 2000 or int(match[2]) == 0:
        raise OfficerFacingError("invalid_reference")
    return int(match[1]), int(match[2])


# --- status lifecycle ------------------------------------------------------------------------


class ReferralStatus(StrEnum):
    SUBMITTED = "submitted"
    TRIAGED = "triaged"
    LINKED = "linked"  # the child is one already known: the earlier referral's case goes on
    CASE_OPENED = "case_opened"
    WITHDRAWN = "withdrawn"


ALLOWED_TRANSITIONS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    ReferralStatus.SUBMITTED: frozenset({ReferralStatus.TRIAGED, ReferralStatus.WITHDRAWN}),
    ReferralStatus.TRIAGED: frozenset(
        {ReferralStatus.LINKED, ReferralStatus.CASE_OPENED, ReferralStatus.WITHDRAWN}
    ),
    ReferralStatus.LINKED: frozenset(),
    ReferralStatus.CASE_OPENED: frozenset(),
    ReferralStatus.WITHDRAWN: frozenset(),
}


def can_transition(current: ReferralStatus, target: ReferralStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class StatusChange:
    from_status: ReferralStatus | None  # None for the submission itself
    to_status: ReferralStatus
    at: datetime
    by: str
    reason_code: str | None = None


_REASON_CODE = re.compile(r"^[a-z_]{1,50}$")  # as the referral.withdrawn contract allows


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC)


@dataclass(eq=False)
class Referral:
    """The referral aggregate. Build it with :meth:`submit`; every change goes through a
    method that checks the lifecycle, bumps ``version`` and records a domain event."""

    id: UUID
    reference: str
    # None when the service loads a referral only to change its status or record a decision:
    # no method below reads the details, so no personal field needs decrypting for that.
    details: ReferralCreate | None
    submitted_by: str
    submitted_at: datetime
    status: ReferralStatus = ReferralStatus.SUBMITTED
    triage: TriageResult | None = None
    same_child_as: UUID | None = None
    case_id: str | None = None
    withdrawal_reason: str | None = None
    match_decisions: list[MatchDecision] = field(default_factory=list)
    history: list[StatusChange] = field(default_factory=list)
    version: int = 1
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def submit(
        cls,
        details: ReferralCreate,
        *,
        referral_id: UUID,
        reference: str,
        submitted_by: str,
        at: datetime,
    ) -> Referral:
        parse_reference(reference)
        at = _aware(at)
        referral = cls(
            id=referral_id,
            reference=reference,
            details=details,
            submitted_by=submitted_by,
            submitted_at=at,
            history=[StatusChange(None, ReferralStatus.SUBMITTED, at, submitted_by)],
        )
        referral.events.append(ReferralSubmitted(referral_id, reference, submitted_by, at))
        return referral

    def _move(
        self, target: ReferralStatus, *, at: datetime, by: str, reason_code: str | None = None
    ) -> None:
        if not can_transition(self.status, target):
            raise OfficerFacingError(
                "invalid_status_transition", current=self.status.value, target=target.value
            )
        self.history.append(StatusChange(self.status, target, at, by, reason_code))
        self.status = target
        self.version += 1

    def apply_triage(self, result: TriageResult, *, at: datetime, by: str = "triage") -> None:
        at = _aware(at)
        self._move(ReferralStatus.TRIAGED, at=at, by=by)
        self.triage = result
        self.events.append(
            ReferralTriaged(self.id, result.priority, result.teams, result.rule_ids, at)
        )

    def decide_match(
        self,
        request: MatchDecisionCreate,
        *,
        decided_by: str,
        at: datetime,
        candidate_ids: Collection[UUID] | None = None,
    ) -> MatchDecision:
        """Record the officer's decision; ``same_child`` links this referral (status
        ``linked``) to the candidate's child. Rules: :mod:`cpu_intake.domain.decisions`."""
        at = _aware(at)
        if self.status is not ReferralStatus.TRIAGED:
            raise OfficerFacingError("match_decision_not_open", status=self.status.value)
        decision = decide_match(
            referral_id=self.id,
            request=request,
            earlier_decisions=self.match_decisions,
            decided_by=decided_by,
            decided_at=at,
            candidate_ids=candidate_ids,
        )
        if decision.decision is MatchDecisionKind.SAME_CHILD:
            self._move(ReferralStatus.LINKED, at=at, by=decided_by)
            self.same_child_as = decision.candidate_referral_id
        else:
            self.version += 1
        self.match_decisions.append(decision)
        self.events.append(
            MatchDecided(
                self.id, decision.candidate_referral_id, decision.decision.value, decided_by, at
            )
        )
        if decision.decision is MatchDecisionKind.SAME_CHILD:
            self.events.append(ReferralLinked(self.id, decision.candidate_referral_id, at))
        return decision

    def mark_case_opened(self, *, case_id: str, at: datetime, by: str = "casework") -> None:
        at = _aware(at)
        self._move(ReferralStatus.CASE_OPENED, at=at, by=by)
        self.case_id = case_id
        self.events.append(ReferralCaseOpened(self.id, case_id, at))

    def withdraw(self, *, reason_code: str, by: str, at: datetime) -> None:
        at = _aware(at)
        if not _REASON_CODE.match(reason_code):
            raise OfficerFacingError("invalid_reason_code")
        self._move(ReferralStatus.WITHDRAWN, at=at, by=by, reason_code=reason_code)
        self.withdrawal_reason = reason_code
        self.events.append(ReferralWithdrawn(self.id, reason_code, by, at))
