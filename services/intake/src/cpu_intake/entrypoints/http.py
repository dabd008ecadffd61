"""HTTP routes of the intake service under ``/api/v1`` (CONTRACT.md sections 5 and 6).

Thin: each route checks its action (``permissions.py``), hands the request to one handler of
``service_layer.referrals`` and shapes the answer. Errors are ``{"detail": ...}``:

- 422: ``detail`` is a list of field problems, each ``{"loc", "field", "code", "msg",
  "msg_km"}``: the domain's message catalogue in English and Khmer, never pydantic's wording,
  never the value that was refused;
- 404: ``{"detail": "No referral with this id, ...", "code": "referral_not_found", ...}``,
  also for a referral the caller may not see, so ids cannot be probed;
- 409: a domain rule refused the change (an illegal match decision, a withdrawn referral...):
  ``{"detail": <English>, "detail_km": <Khmer>, "code": <the rule's code>}``;
- 415 for anything but JSON (no file is ever accepted by intake), 413 for oversized bodies,
  from the shared hardening.

No route takes a personal value in its URL: list filters are codes and dates, and unknown
query parameters are refused rather than ignored, so a name typed into a URL is an error,
not a silent entry in some proxy's log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from cpu_intake.adapters.public import (
    MatchDecisionResultPublic,
    MatchesPublic,
    ReferralCreatedPublic,
    ReferralPublic,
    ReferralsPublic,
    WithdrawalCreate,
    WithdrawalResultPublic,
)
from cpu_intake.adapters.repository import ListFilters
from cpu_intake.domain.decisions import MatchDecisionCreate
from cpu_intake.domain.messages import OfficerFacingError, officer_errors_from
from cpu_intake.domain.referral import ReferralCreate, ReferralStatus
from cpu_intake.permissions import (
    CREATE,
    LIST,
    MATCH_DECIDE,
    MATCHES_READ,
    PERMISSIONS,
    READ,
    WITHDRAW,
)
from cpu_intake.service_layer import referrals
from cpu_intake.service_layer.referrals import Intake, ReferralNotFound
from cpu_shared.contracts.codes import Concern, Priority, ReferralSource, Team
from cpu_shared.security.auth import Principal

router = APIRouter(tags=["referrals"])

#: Refusals that concern the request's content rather than the referral's state.
UNPROCESSABLE_CODES = frozenset({"invalid_reason_code", "invalid_reference"})


class ErrorPublic(BaseModel):
    detail: str
    detail_km: str | None = None
    code: str | None = None


class FieldProblem(BaseModel):
    loc: list[str | int]
    field: str
    code: str
    msg: str
    msg_km: str


class ValidationErrorPublic(BaseModel):
    detail: list[FieldProblem]


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such referral (or not one you may see)"},
    422: {"model": ValidationErrorPublic, "description": "Field-level problems, en and km"},
}


async def intake_of(request: Request) -> Intake:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop (and
    # its locking) on every request for a dictionary look-up.
    return request.app.state.intake


IntakeDep = Annotated[Intake, Depends(intake_of)]


@router.post(
    "/referrals",
    status_code=201,
    response_model=ReferralCreatedPublic,
    responses={422: ERRORS[422]},
    summary="Record a referral",
)
async def create_referral(
    body: ReferralCreate,
    request: Request,
    response: Response,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(PERMISSIONS.require(CREATE))],
) -> ReferralCreatedPublic:
    created = await referrals.submit(intake, principal, body, request=request)
    response.headers["Location"] = f"/api/v1/referrals/{created.id}"
    return created


LIST_PARAMETERS = frozenset(
    {
        "status",
        "priority",
        "source",
        "province_code",
        "team",
        "concern",
        "reference",
        "submitted_on",
        "submitted_from",
        "submitted_to",
        "match_decision_pending",
        "order",
        "limit",
        "offset",
    }
)


async def known_parameters_only(request: Request) -> None:
    unknown = sorted(set(request.query_params) - LIST_PARAMETERS)
    if unknown:
        raise RequestValidationError(
            [{"type": "extra_forbidden", "loc": ("query", name), "msg": ""} for name in unknown]
        )


@router.get(
    "/referrals",
    response_model=ReferralsPublic,
    responses={422: ERRORS[422]},
    dependencies=[Depends(known_parameters_only)],
    summary="List referrals (codes, dates and priority only)",
)
async def list_referrals(
    request: Request,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(PERMISSIONS.require(LIST))],
    status: ReferralStatus | None = None,
    priority: Priority | None = None,
    source: ReferralSource | None = None,
    province_code: Annotated[str | None, Query(pattern=r"^(0[1-9]|1[0-9]|2[0-5])$")] = None,
    team: Team | None = None,
    concern: Concern | None = None,
    reference: Annotated[str | None, Query(pattern=r"^REF-\d{4}-\d{6}$")] = None,
    submitted_on: date | None = None,
    submitted_from: date | None = None,
    submitted_to: date | None = None,
    match_decision_pending: bool | None = None,
    order: Literal["priority", "newest"] = "priority",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> ReferralsPublic:
    filters = ListFilters(
        status=status.value if status else None,
        priority=priority,
        source=source,
        province_code=province_code,
        team=team,
        concern=concern,
        reference=reference,
        submitted_on=submitted_on,
        submitted_from=submitted_from,
        submitted_to=submitted_to,
        match_decision_pending=match_decision_pending,
        order=order,
        limit=limit,
        offset=offset,
    )
    return await referrals.list_referrals(intake, principal, filters, request=request)


@router.get(
    "/referrals/{referral_id}",
    response_model=ReferralPublic,
    responses={404: ERRORS[404], 422: ERRORS[422]},
    summary="One referral in full (decrypted; the read is audited)",
)
async def get_referral(
    referral_id: uuid.UUID,
    request: Request,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(PERMISSIONS.require(READ))],
) -> ReferralPublic:
    return await referrals.get(intake, principal, referral_id, request=request)


@router.get(
    "/referrals/{referral_id}/matches",
    response_model=MatchesPublic,
    responses={404: ERRORS[404], 422: ERRORS[422]},
    summary="Earlier referrals that may be the same child, best first",
)
async def get_matches(
    referral_id: uuid.UUID,
    request: Request,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(PERMISSIONS.require(MATCHES_READ))],
) -> MatchesPublic:
    return await referrals.matches(intake, principal, referral_id, request=request)


@router.post(
    "/referrals/{referral_id}/match-decision",
    response_model=MatchDecisionResultPublic,
    responses={404: ERRORS[404], 409: {"model": ErrorPublic}, 422: ERRORS[422]},
    summary="Same child or new child: the officer's decision on one possible match",
)
async def post_match_decision(
    referral_id: uuid.UUID,
    body: MatchDecisionCreate,
    request: Request,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(PERMISSIONS.require(MATCH_DECIDE))],
) -> MatchDecisionResultPublic:
    return await referrals.decide_match(intake, principal, referral_id, body, request=request)


@router.post(
    "/referrals/{referral_id}/withdrawal",
    response_model=WithdrawalResultPublic,
    responses={404: ERRORS[404], 409: {"model": ErrorPublic}, 422: ERRORS[422]},
    summary="Withdraw a referral made in error (referral.withdrawn)",
)
async def post_withdrawal(
    referral_id: uuid.UUID,
    body: WithdrawalCreate,
    request: Request,
    intake: IntakeDep,
    principal: Annotated[Principal, Depends(PERMISSIONS.require(WITHDRAW))],
) -> WithdrawalResultPublic:
    return await referrals.withdraw(
        intake, principal, referral_id, body.reason_code, request=request
    )


# --- errors -------------------------------------------------------------------------------------


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Request validation errors as officer-facing problems (no refused value echoed)."""
    errors = list(errors)
    locs = []
    for error in errors:
        loc = list(error.get("loc") or ())
        locs.append(loc[1:] if loc[:1] == ["body"] else loc)
    problems = officer_errors_from({**e, "loc": loc} for e, loc in zip(errors, locs, strict=True))
    return [
        {"loc": loc, "field": p.field, "code": p.code, "msg": p.en, "msg_km": p.km}
        for loc, p in zip(locs, problems, strict=True)
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def unprocessable(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": field_problems(exc.errors())}, status_code=422)

    @app.exception_handler(OfficerFacingError)
    async def refused(_request: Request, exc: OfficerFacingError) -> JSONResponse:
        en, km = exc.message("en"), exc.message("km")
        if exc.code in UNPROCESSABLE_CODES:
            problem = {"loc": [], "field": "", "code": exc.code, "msg": en, "msg_km": km}
            return JSONResponse({"detail": [problem]}, status_code=422)
        status = 404 if isinstance(exc, ReferralNotFound) else 409
        return JSONResponse({"detail": en, "detail_km": km, "code": exc.code}, status_code=status)
