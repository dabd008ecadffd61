"""Lab analyses of an evidence item: request, assignment, examination, result, sign-off.

States and the only moves between them::

    requested --assign--> assigned --start--> in_progress --record_result--> reported
        |  ^------assign (reassign)--'             ^                            |
        |                                          '----sign_off(approve=False)-+
        '--cancel (from requested, assigned, in_progress)--> cancelled          |
                                                       signed_off <--sign_off--'

Decisions, each refused with :class:`AnalysisRuleBroken` and its :class:`AnalysisRule` name:

* ``analysis_not_applicable``: each analysis type takes only the item types it can examine
  (:data:`APPLICABLE`): toxicology on a phone, or a digital extraction of a swab, is refused.
* ``item_disposed``: nothing is requested on a released or destroyed item.
* ``not_the_analyst``: only the assigned analyst starts the examination and records results.
* ``analyst_not_custodian``: the analyst must hold the item (per its chain of custody) when the
  examination starts. A result from someone who never had the item is the first thing a
  defence asks about, so the custody chain has to show the handover to the analyst first.
  Results may be recorded after the item has moved on (reports are written later).
* ``signer_is_analyst``: sign-off is a second person's technical review (the usual
  ISO/IEC 17025 practice), so the analyst cannot sign off their own result. A reviewer who
  does not approve sends the analysis back to ``in_progress`` with a note; the result they
  rejected is kept in ``superseded_results``, never erased.
* ``unknown_result_code``: result codes are a closed list per type (:data:`RESULT_CODES`),
  lower-case words, because ``evidence.analysis_completed`` carries the code to reporting and
  must carry no personal data. Free text stays in ``summary``, inside this service.
* ``analysis_wrong_state``: any move the diagram does not show.
* ``time_goes_backwards``: steps are dated by the server's clock and cannot predate the
  previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cpu_forensics.domain.evidence import EvidenceItem, EvidenceType
from cpu_forensics.domain.rules import AnalysisRule, AnalysisRuleBroken, InvalidValue
from cpu_forensics.domain.values import identifier, optional_text, text, utc


class AnalysisType(StrEnum):
    DNA_PROFILE = "dna_profile"
    BLOOD = "blood"
    TOXICOLOGY = "toxicology"
    DIGITAL_EXTRACTION = "digital_extraction"


class AnalysisStatus(StrEnum):
    REQUESTED = "requested"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    REPORTED = "reported"  # a result awaits a second person's sign-off
    SIGNED_OFF = "signed_off"
    CANCELLED = "cancelled"


_PHYSICAL_BIOLOGICAL = frozenset(
    {
        EvidenceType.BIOLOGICAL_SAMPLE,
        EvidenceType.BLOOD,
        EvidenceType.CLOTHING,
        EvidenceType.OTHER,
    }
)

APPLICABLE: dict[AnalysisType, frozenset[EvidenceType]] = {
    AnalysisType.DNA_PROFILE: _PHYSICAL_BIOLOGICAL
    | {EvidenceType.DNA_EXTRACT, EvidenceType.DOCUMENT},
    AnalysisType.BLOOD: _PHYSICAL_BIOLOGICAL | {EvidenceType.DOCUMENT},
    AnalysisType.TOXICOLOGY: frozenset(
        {EvidenceType.BLOOD, EvidenceType.BIOLOGICAL_SAMPLE, EvidenceType.OTHER}
    ),
    AnalysisType.DIGITAL_EXTRACTION: frozenset(
        {EvidenceType.DIGITAL_DEVICE, EvidenceType.FORENSIC_IMAGE}
    ),
}

_COMMON_CODES = frozenset({"inconclusive", "sample_unsuitable"})
RESULT_CODES: dict[AnalysisType, frozenset[str]] = {
    AnalysisType.DNA_PROFILE: _COMMON_CODES
    | {"full_profile", "partial_profile", "mixed_profile", "no_profile"},
    AnalysisType.BLOOD: _COMMON_CODES
    | {"human_blood_detected", "blood_detected", "no_blood_detected"},
    AnalysisType.TOXICOLOGY: _COMMON_CODES | {"substance_detected", "no_substance_detected"},
    AnalysisType.DIGITAL_EXTRACTION: _COMMON_CODES
    | {"full_extraction", "partial_extraction", "extraction_failed", "device_locked"},
}


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    method: str  # the procedure or tool and version, e.g. "GlobalFiler PCR, 3500xL CE"
    result_code: str
    recorded_by: str
    recorded_at: datetime
    summary: str | None = None  # free text; stays in this service, never in an event


@dataclass(slots=True, eq=False)
class LabAnalysis:
    """One analysis of one item (the aggregate; ``version`` bumps on every change)."""

    id: str
    item_id: str
    case_id: str
    type: AnalysisType
    requested_by: str
    requested_at: datetime
    purpose: str
    status: AnalysisStatus = AnalysisStatus.REQUESTED
    analyst: str | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    result: AnalysisResult | None = None
    superseded_results: tuple[AnalysisResult, ...] = ()
    signed_off_by: str | None = None
    signed_off_at: datetime | None = None
    review_note: str | None = None
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    last_step_at: datetime | None = field(default=None)
    version: int = 1

    def __post_init__(self) -> None:
        self.type = AnalysisType(self.type)
        self.status = AnalysisStatus(self.status)
        self.requested_at = utc(self.requested_at, "requested_at")
        if self.last_step_at is None:
            self.last_step_at = self.requested_at


def _refuse(rule: AnalysisRule, message: str) -> AnalysisRuleBroken:
    return AnalysisRuleBroken(rule, message)


def _step(analysis: LabAnalysis, at: datetime, allowed: set[AnalysisStatus], what: str) -> datetime:
    at = utc(at, "at")
    if analysis.status not in allowed:
        raise _refuse(
            AnalysisRule.ANALYSIS_WRONG_STATE,
            f"cannot {what} an analysis that is {analysis.status}",
        )
    if analysis.last_step_at is not None and at < analysis.last_step_at:
        raise _refuse(AnalysisRule.TIME_GOES_BACKWARDS, f"{what} predates the previous step")
    return at


def _done(analysis: LabAnalysis, at: datetime) -> None:
    analysis.last_step_at = at
    analysis.version += 1


def request_analysis(
    item: EvidenceItem,
    *,
    analysis_id: str,
    type: AnalysisType | str,
    requested_by: str,
    purpose: str,
    at: datetime,
) -> LabAnalysis:
    """A new analysis of ``item``; ``at`` is the server's clock."""
    try:
        kind = AnalysisType(type)
    except ValueError:
        raise InvalidValue("type", f"unknown analysis type {type!r}") from None
    if item.is_disposed:
        raise _refuse(AnalysisRule.ITEM_DISPOSED, f"item {item.id} was {item.status}")
    if item.type not in APPLICABLE[kind]:
        raise _refuse(
            AnalysisRule.ANALYSIS_NOT_APPLICABLE, f"{kind} does not apply to a {item.type}"
        )
    return LabAnalysis(
        id=identifier(analysis_id, "analysis_id"),
        item_id=item.id,
        case_id=item.case_id,
        type=kind,
        requested_by=identifier(requested_by, "requested_by"),
        requested_at=at,
        purpose=text(purpose, "purpose", max_length=500),
    )


def assign_analyst(analysis: LabAnalysis, *, analyst: str, by_user: str, at: datetime) -> None:
    """Give the analysis to ``analyst`` (again, to reassign before work starts)."""
    at = _step(analysis, at, {AnalysisStatus.REQUESTED, AnalysisStatus.ASSIGNED}, "assign")
    analysis.analyst = identifier(analyst, "analyst")
    analysis.assigned_by = identifier(by_user, "by_user")
    analysis.assigned_at = at
    analysis.status = AnalysisStatus.ASSIGNED
    _done(analysis, at)


def start_analysis(
    analysis: LabAnalysis, item: EvidenceItem, *, by_user: str, at: datetime
) -> None:
    """The analyst begins the examination; they must hold ``item`` now."""
    if item.id != analysis.item_id:
        raise InvalidValue("item", f"analysis {analysis.id} is of item {analysis.item_id}")
    at = _step(analysis, at, {AnalysisStatus.ASSIGNED}, "start")
    if by_user != analysis.analyst:
        raise _refuse(AnalysisRule.NOT_THE_ANALYST, f"assigned to {analysis.analyst}")
    if item.custodian != by_user:
        raise _refuse(
            AnalysisRule.ANALYST_NOT_CUSTODIAN,
            f"{by_user} does not hold item {item.id}; {item.custodian} does: hand it over first",
        )
    analysis.started_at = at
    analysis.status = AnalysisStatus.IN_PROGRESS
    _done(analysis, at)


def record_result(
    analysis: LabAnalysis,
    *,
    by_user: str,
    method: str,
    result_code: str,
    at: datetime,
    summary: str | None = None,
) -> AnalysisResult:
    """The analyst's result; it waits for a second person's sign-off."""
    at = _step(analysis, at, {AnalysisStatus.IN_PROGRESS}, "record a result of")
    if by_user != analysis.analyst:
        raise _refuse(AnalysisRule.NOT_THE_ANALYST, f"assigned to {analysis.analyst}")
    if result_code not in RESULT_CODES[analysis.type]:
        raise _refuse(
            AnalysisRule.UNKNOWN_RESULT_CODE,
            f"{result_code!r} is not one of {sorted(RESULT_CODES[analysis.type])}",
        )
    result = AnalysisResult(
        method=text(method, "method", max_length=500),
        result_code=result_code,
        recorded_by=by_user,
        recorded_at=at,
        summary=optional_text(summary, "summary", max_length=10_000, multiline=True),
    )
    analysis.result = result
    analysis.status = AnalysisStatus.REPORTED
    _done(analysis, at)
    return result


def sign_off_result(
    analysis: LabAnalysis,
    *,
    by_user: str,
    at: datetime,
    approve: bool = True,
    note: str | None = None,
) -> None:
    """A second person approves the result, or sends it back with ``note`` (required then)."""
    at = _step(analysis, at, {AnalysisStatus.REPORTED}, "sign off")
    signer = identifier(by_user, "by_user")
    if signer == analysis.analyst:
        raise _refuse(AnalysisRule.SIGNER_IS_ANALYST, "a result is signed off by someone else")
    review = optional_text(note, "note", max_length=2000, multiline=True)
    if approve:
        analysis.signed_off_by = signer
        analysis.signed_off_at = at
        analysis.review_note = review
        analysis.status = AnalysisStatus.SIGNED_OFF
    else:
        if review is None:
            raise InvalidValue("note", "say why the result is sent back")
        if analysis.result is not None:  # always, in REPORTED
            analysis.superseded_results = (*analysis.superseded_results, analysis.result)
        analysis.result = None
        analysis.review_note = review
        analysis.status = AnalysisStatus.IN_PROGRESS
    _done(analysis, at)


def cancel_analysis(analysis: LabAnalysis, *, by_user: str, at: datetime, reason: str) -> None:
    """Stop an analysis that has no result awaiting sign-off."""
    at = _step(
        analysis,
        at,
        {AnalysisStatus.REQUESTED, AnalysisStatus.ASSIGNED, AnalysisStatus.IN_PROGRESS},
        "cancel",
    )
    analysis.cancelled_by = identifier(by_user, "by_user")
    analysis.cancelled_at = at
    analysis.cancel_reason = text(reason, "reason", max_length=500)
    analysis.status = AnalysisStatus.CANCELLED
    _done(analysis, at)
