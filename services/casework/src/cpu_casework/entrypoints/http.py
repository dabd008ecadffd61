"""HTTP routes of the casework service under ``/api/v1`` (CONTRACT.md section 5).

Status codes: 401 without a valid token, 403 for a role the permission table does not allow,
404 for a case that does not exist *or that the caller may not see* (the record-level rule,
see :mod:`cpu_casework.service_layer.commands`; the two are deliberately indistinguishable),
409 when a case rule refuses the command (``{"detail": {"message", "rule", ...}}``; an illegal
transition adds ``current``, ``requested`` and ``allowed``), 422 for a malformed request or a
value a rule refuses (``{"detail": [{"loc", "msg", "type"}]}``). A command that repeats what the
case already holds (a retried request) answers 200 and changes nothing; one that changed the
case answers 201.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from cpu_casework.adapters.queries import CaseFilters
from cpu_casework.adapters.schemas import (
    ArrestCreate,
    AssignmentCreate,
    CaseDetail,
    CasePage,
    ChargeCreate,
    CourtOutcomeCreate,
    FirstContactCreate,
    OffencePublic,
    OverdueReport,
    SuspectCreate,
    SuspectCreated,
    TransitionCreate,
    VictimServiceCreate,
)
from cpu_casework.domain.errors import CaseworkError, InvalidValue, NotAllowedInStatus
from cpu_casework.domain.lifecycle import (
    REOPENED,
    IllegalTransition,
    TransitionRequirementNotMet,
)
from cpu_casework.permissions import PERMISSIONS
from cpu_casework.service_layer import actions
from cpu_casework.service_layer.commands import (
    CaseNotFound,
    CommandResult,
    list_cases,
    overdue_report,
    read_case,
    run_command,
)
from cpu_casework.service_layer.context import Casework
from cpu_shared.contracts.codes import CaseStatus, ProvinceCode, Team
from cpu_shared.security.auth import Principal
from cpu_shared.security.pseudonym import PSEUDONYM_PATTERN

router = APIRouter(tags=["casework"])

_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)
CASE_NOT_FOUND = "case not found"


def casework(request: Request) -> Casework:
    return request.app.state.casework  # type: ignore[no-any-return]


def error_response(exc: CaseworkError) -> HTTPException:
    """The HTTP answer to a refused command (409 for a rule, 422 for a value)."""
    if isinstance(exc, InvalidValue):
        return HTTPException(
            422, [{"loc": ["body", exc.field], "msg": exc.message, "type": exc.rule}]
        )
    detail: dict[str, Any] = {"message": str(exc), "rule": exc.rule}
    if isinstance(exc, IllegalTransition):
        detail |= {"current": exc.current, "requested": exc.requested, "allowed": exc.allowed}
    elif isinstance(exc, TransitionRequirementNotMet):
        detail |= {"requested": exc.requested, "requirement": exc.requirement}
    elif isinstance(exc, NotAllowedInStatus):
        detail |= {"status": exc.status, "allowed": exc.allowed}
    return HTTPException(409, detail)


def _not_found() -> NoReturn:
    raise HTTPException(404, CASE_NOT_FOUND)


def referral_key(cw: Casework, referral_id: str) -> str:
    """Intake's referral id (or its pseudonym, as events carry it) -> the pseudonym."""
    if _PSEUDONYM.match(referral_id):
        return referral_id
    try:
        referral_id = str(uuid.UUID(referral_id))  # intake's ids are UUIDs, canonical form
    except ValueError:
        pass
    return cw.referral_pseudonym(referral_id)


async def _act(
    request: Request,
    response: Response,
    principal: Principal,
    case_id: uuid.UUID,
    action: str,
    command: actions.Command,
) -> CommandResult:
    cw = casework(request)
    try:
        outcome = await run_command(
            request.app.state.runtime.transaction,
            cw,
            principal,
            str(case_id),
            action=action,
            command=command,
            reveal_suspects=PERMISSIONS.permits(principal, "suspect.read"),
            request=request,
        )
    except CaseNotFound:
        _not_found()
    except CaseworkError as exc:
        raise error_response(exc) from None
    response.status_code = 201 if outcome.changed else 200
    return outcome


@router.get("/cases", response_model=CasePage)
async def get_cases(
    request: Request,
    referral_id: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_\-]{1,64}$", description="intake's referral id")
    ] = None,
    tip_id: Annotated[
        str | None,
        Query(pattern=PSEUDONYM_PATTERN, description="ICAC's tip, as tip.escalated names it"),
    ] = None,
    status: CaseStatus | None = None,
    province: ProvinceCode | None = None,
    team: Team | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    principal: Principal = Depends(PERMISSIONS.require("case.list")),
) -> CasePage:
    cw = casework(request)
    filters = CaseFilters(
        referral_id=referral_key(cw, referral_id) if referral_id else None,
        tip_id=tip_id,
        status=status,
        province=province,
        team=team,
    )
    return await list_cases(
        request.app.state.runtime.transaction,
        cw,
        principal,
        filters,
        limit=limit,
        offset=offset,
        request=request,
    )


@router.get("/cases/{case_id}", response_model=CaseDetail)
async def get_case(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(PERMISSIONS.require("case.read")),
) -> CaseDetail:
    try:
        return await read_case(
            request.app.state.runtime.transaction,
            casework(request),
            principal,
            str(case_id),
            reveal_suspects=PERMISSIONS.permits(principal, "suspect.read"),
            request=request,
        )
    except CaseNotFound:
        _not_found()


@router.post("/cases/{case_id}/assignments", response_model=CaseDetail, status_code=201)
async def post_assignment(
    case_id: uuid.UUID,
    body: AssignmentCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("case.assign")),
) -> CaseDetail:
    command = actions.assign(body, principal.user)
    return (await _act(request, response, principal, case_id, "case.assign", command)).detail


@router.post("/cases/{case_id}/transitions", response_model=CaseDetail, status_code=201)
async def post_transition(
    case_id: uuid.UUID,
    body: TransitionCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("case.transition")),
) -> CaseDetail:
    if body.to_status == REOPENED and not PERMISSIONS.permits(principal, "case.reopen"):
        roles = ", ".join(sorted(principal.roles)) or "(none)"
        raise HTTPException(403, f"role(s) {roles} may not case.reopen")
    command = actions.transition(body, principal.user)
    return (await _act(request, response, principal, case_id, "case.transition", command)).detail


@router.post("/cases/{case_id}/suspects", response_model=SuspectCreated, status_code=201)
async def post_suspect(
    case_id: uuid.UUID,
    body: SuspectCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("suspect.create")),
) -> SuspectCreated:
    suspect_id, command = actions.add_suspect(body, principal.user, casework(request).cipher)
    outcome = await _act(request, response, principal, case_id, "suspect.create", command)
    return SuspectCreated(suspect_id=suspect_id, case=outcome.detail)


@router.post("/cases/{case_id}/arrests", response_model=CaseDetail, status_code=201)
async def post_arrest(
    case_id: uuid.UUID,
    body: ArrestCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("arrest.create")),
) -> CaseDetail:
    command = actions.record_arrest(body, principal.user)
    return (await _act(request, response, principal, case_id, "arrest.create", command)).detail


@router.post("/cases/{case_id}/charges", response_model=CaseDetail, status_code=201)
async def post_charge(
    case_id: uuid.UUID,
    body: ChargeCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("charge.create")),
) -> CaseDetail:
    command = actions.record_charge(body, principal.user, casework(request).offences)
    return (await _act(request, response, principal, case_id, "charge.create", command)).detail


@router.post("/cases/{case_id}/court-outcomes", response_model=CaseDetail, status_code=201)
async def post_court_outcome(
    case_id: uuid.UUID,
    body: CourtOutcomeCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("court_outcome.create")),
) -> CaseDetail:
    command = actions.record_court_outcome(body, principal.user, casework(request).offences)
    return (
        await _act(request, response, principal, case_id, "court_outcome.create", command)
    ).detail


@router.post("/cases/{case_id}/victim-services", response_model=CaseDetail, status_code=201)
async def post_victim_service(
    case_id: uuid.UUID,
    body: VictimServiceCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("victim_service.create")),
) -> CaseDetail:
    command = actions.record_victim_service(body, principal.user)
    return (
        await _act(request, response, principal, case_id, "victim_service.create", command)
    ).detail


@router.post("/cases/{case_id}/first-contact", response_model=CaseDetail, status_code=201)
async def post_first_contact(
    case_id: uuid.UUID,
    body: FirstContactCreate,
    request: Request,
    response: Response,
    principal: Principal = Depends(PERMISSIONS.require("first_contact.create")),
) -> CaseDetail:
    command = actions.record_first_contact(body, principal.user)
    return (
        await _act(request, response, principal, case_id, "first_contact.create", command)
    ).detail


@router.get("/first-contact/overdue", response_model=OverdueReport)
async def get_overdue(
    request: Request,
    team: Team | None = None,
    principal: Principal = Depends(PERMISSIONS.require("first_contact.overdue")),
) -> OverdueReport:
    return await overdue_report(
        request.app.state.runtime.transaction,
        casework(request),
        principal,
        team=team,
        request=request,
    )


@router.get("/offences", response_model=list[OffencePublic])
async def get_offences(
    request: Request,
    _principal: Principal = Depends(PERMISSIONS.require("offence.read")),
) -> list[OffencePublic]:
    """The offence codes charges and court outcomes accept (reference data, no record)."""
    return [
        OffencePublic(code=o.code, law=o.law, article=o.article, title_en=o.title_en)
        for o in casework(request).offences
    ]
