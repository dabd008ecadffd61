"""Officers' pages under ``/ui``: the caseload, a case with its timeline and actions, and the
overdue first contacts.

Pages run the same service-layer functions as the API (same permission table, same
record-level rule, same audit rows); forms are plain HTML forms that work without JavaScript
and answer with a redirect (Post/Redirect/Get) or, when a rule refuses the action, the case page
again with the reason. Text is English or Khmer (``translations/km.po``); times are shown in
Cambodia's time (UTC+07:00), and a time typed into a form is read as Cambodia's time too.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from cpu_casework.adapters.queries import CaseFilters
from cpu_casework.adapters.schemas import (
    ArrestCreate,
    AssignmentCreate,
    CaseDetail,
    ChargeCreate,
    CourtOutcomeCreate,
    FirstContactCreate,
    SuspectCreate,
    TransitionCreate,
    VictimServiceCreate,
)
from cpu_casework.domain.errors import CaseworkError, InvalidValue, NotAllowedInStatus
from cpu_casework.domain.lifecycle import REOPENED, STATUSES, IllegalTransition
from cpu_casework.domain.values import CAMBODIA_TZ, TEAMS
from cpu_casework.domain.victim_services import SERVICES
from cpu_casework.permissions import PERMISSIONS
from cpu_casework.service_layer import actions
from cpu_casework.service_layer.commands import (
    CaseNotFound,
    caseload,
    list_cases,
    overdue_report,
    read_case,
    run_command,
)
from cpu_casework.service_layer.context import Casework
from cpu_shared.security.auth import Principal
from cpu_shared.web import WebUI

HERE = Path(__file__).parent
PAGE_SIZE = 50

ui = WebUI(
    service="casework",
    title="Casework",
    templates_dir=HERE / "templates",
    translations_dir=HERE / "translations",
    permissions=PERMISSIONS,
    nav=[("/ui/cases", "Caseload"), ("/ui/overdue", "Overdue first contacts")],
)
pages = APIRouter(include_in_schema=False)

# Labels of codes, translated in the templates with _(...).
STATUS_LABELS = {
    "open": "Open",
    "under_investigation": "Under investigation",
    "suspect_identified": "Suspect identified",
    "arrest_made": "Arrest made",
    "charged": "Charged",
    "in_court": "In court",
    "closed_convicted": "Closed: convicted",
    "closed_acquitted": "Closed: acquitted",
    "closed_unfounded": "Closed: unfounded",
    "closed_transferred": "Closed: transferred",
    "reopened": "Reopened",
}
SERVICE_LABELS = {
    "medical_care": "Medical care",
    "psychological_counselling": "Psychological counselling",
    "legal_representation": "Legal representation",
    "shelter": "Shelter",
    "family_support": "Family support",
    "partner_referral": "Referral to a partner agency",
}
KIND_LABELS = {
    "opened": "Case opened",
    "referral_linked": "Referral linked",
    "assigned": "Assigned",
    "status_changed": "Status changed",
    "suspect_identified": "Suspect identified",
    "arrest": "Arrest",
    "charge": "Charge",
    "court_outcome": "Court outcome",
    "victim_service": "Victim service",
    "first_contact": "First contact",
    "evidence": "Evidence",
}
SEX_LABELS = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}
OUTCOME_LABELS = {"convicted": "Convicted", "acquitted": "Acquitted"}
DONE_MESSAGES = {
    "transition": "The case status was changed.",
    "assignment": "The assignment was recorded.",
    "suspect": "The suspect was recorded.",
    "arrest": "The arrest was recorded.",
    "charge": "The charge was recorded.",
    "court-outcome": "The court outcome was recorded.",
    "victim-service": "The service was recorded.",
    "first-contact": "The first contact was recorded.",
    "unchanged": "Nothing changed: this was already recorded.",
}
# Reason codes officers use most; any lower-case code is accepted.
REASON_CODES = (
    "investigation_started",
    "suspect_located",
    "arrest_executed",
    "charged_by_prosecutor",
    "sent_to_court",
    "court_judgment",
    "no_offence_found",
    "insufficient_evidence",
    "transferred_to_other_unit",
    "new_evidence",
    "investigator_assigned",
    "workload",
)


def _ict(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(CAMBODIA_TZ).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


ui.templates.env.filters["ict"] = _ict


def install_pages(app: FastAPI) -> None:
    ui.install(app, pages)


# The platform's default ``Referrer-Policy: no-referrer`` makes browsers send ``Origin: null``
# with a same-origin form POST, which the page guard (rightly) refuses as cross-site. Pages
# holding forms therefore say ``same-origin``: the referrer (a path of ids) is sent to this
# service only, never to another site, and the form POST carries its true origin.
REFERRER_POLICY = "same-origin"


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    response = ui.render(request, name, context, status_code=status_code)
    response.headers["Referrer-Policy"] = REFERRER_POLICY
    return response


def _cw(request: Request) -> Casework:
    return request.app.state.casework  # type: ignore[no-any-return]


def _tx(request: Request) -> Any:
    return request.app.state.runtime.transaction


def _common(principal: Principal) -> dict[str, Any]:
    return {
        "can": {action: PERMISSIONS.permits(principal, action) for action in PERMISSIONS.actions},
        "status_labels": STATUS_LABELS,
        "service_labels": SERVICE_LABELS,
        "kind_labels": KIND_LABELS,
        "sex_labels": SEX_LABELS,
        "outcome_labels": OUTCOME_LABELS,
        "teams": TEAMS,
        "provinces": [f"{n:02d}" for n in range(1, 26)],
    }


@pages.get("/", response_class=HTMLResponse)
async def home(_principal: Principal = Depends(ui.page("case.list"))) -> Response:
    return RedirectResponse("/ui/cases", status_code=303)


@pages.get("/cases", response_class=HTMLResponse)
async def caseload_page(
    request: Request,
    team: str | None = None,
    province: str | None = None,
    status: str | None = None,
    page: int = 1,
    principal: Principal = Depends(ui.page("case.list")),
) -> HTMLResponse:
    team = team if team in TEAMS else None
    province = province if province and province.isdigit() and 1 <= int(province) <= 25 else None
    status = status if status in STATUSES else None
    page = max(1, min(page, 10_000))
    filters = CaseFilters(status=status, province=province, team=team, open_only=status is None)
    result = await list_cases(
        _tx(request),
        _cw(request),
        principal,
        filters,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
        request=request,
    )
    counts = await caseload(_tx(request), principal)
    by_team: dict[str, dict[str, int]] = {}
    for lead, prov, n in counts:
        by_team.setdefault(lead or "-", {})[prov or "-"] = n
    provinces = sorted({prov or "-" for _, prov, _ in counts})
    query = {k: v for k, v in {"team": team, "province": province, "status": status}.items() if v}
    return render(
        request,
        "cases.html",
        {
            **_common(principal),
            "result": result,
            "by_team": by_team,
            "load_provinces": provinces,
            "filters": query,
            "page": page,
            "pages": max(1, -(-result.total // PAGE_SIZE)),
            "query": urlencode(query),
        },
    )


async def _case_page(
    request: Request,
    principal: Principal,
    case_id: uuid.UUID,
    *,
    error: dict[str, Any] | None = None,
    form: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    cw = _cw(request)
    try:
        case = await read_case(
            _tx(request),
            cw,
            principal,
            str(case_id),
            reveal_suspects=PERMISSIONS.permits(principal, "suspect.read"),
            request=request,
        )
    except CaseNotFound:
        return render(request, "not_found.html", {}, status_code=404)
    done = request.query_params.get("done")
    return render(
        request,
        "case.html",
        {
            **_common(principal),
            "case": case,
            "suspect_names": _suspect_names(case),
            "offences": list(cw.offences),
            "services": SERVICES,
            "reason_codes": REASON_CODES,
            "done": DONE_MESSAGES.get(done or ""),
            "error": error,
            "form": form,
            "today": datetime.now(CAMBODIA_TZ).date().isoformat(),
        },
        status_code=status_code,
    )


def _suspect_names(case: CaseDetail) -> dict[str, str]:
    names: dict[str, str] = {}
    for n, suspect in enumerate(case.suspects, start=1):
        label = f"#{n}"
        details = suspect.details
        if details is not None:
            parts = [details.given_name, details.family_name]
            name = " ".join(p for p in parts if p) or details.name_km or ", ".join(details.aliases)
            label = f"#{n} {name}".strip()
        names[suspect.suspect_id] = label
    return names


@pages.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("case.read")),
) -> HTMLResponse:
    return await _case_page(request, principal, case_id)


# ------------------------------------------------------------------------------------- forms


def _blank_to_none(form: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if v != "" else None) for k, v in form.items()}


def _local_time(value: str | None) -> str | None:
    """An HTML ``datetime-local`` value (no zone) read as Cambodia's time."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the model refuses it with a field error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CAMBODIA_TZ)
    return moment.isoformat()


def _form_error(exc: ValidationError) -> dict[str, Any]:
    fields = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(p) for p in err["loc"] if p != "body") or "form"
        fields.append(f"{loc}: {err['msg']}")
    return {"message": "Please correct the form.", "fields": fields}


def _rule_error(exc: CaseworkError) -> dict[str, Any]:
    error: dict[str, Any] = {"message": str(exc), "rule": exc.rule}
    if isinstance(exc, IllegalTransition):
        error["allowed"] = exc.allowed
    elif isinstance(exc, NotAllowedInStatus):
        error["allowed"] = exc.allowed
    return error


async def _submit(
    request: Request,
    principal: Principal,
    case_id: uuid.UUID,
    *,
    form_name: str,
    action: str,
    model: type[BaseModel],
    build: Any,
    data: dict[str, Any],
) -> Response:
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        return await _case_page(
            request, principal, case_id, error=_form_error(exc), form=form_name, status_code=422
        )
    try:
        outcome = await run_command(
            _tx(request),
            _cw(request),
            principal,
            str(case_id),
            action=action,
            command=build(body),
            reveal_suspects=False,
            request=request,
        )
    except CaseNotFound:
        return render(request, "not_found.html", {}, status_code=404)
    except CaseworkError as exc:
        return await _case_page(
            request,
            principal,
            case_id,
            error=_rule_error(exc),
            form=form_name,
            status_code=422 if isinstance(exc, InvalidValue) else 409,
        )
    done = form_name if outcome.changed else "unchanged"
    return RedirectResponse(f"/ui/cases/{case_id}?done={done}#timeline", status_code=303)


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {key: form.getlist(key) if len(form.getlist(key)) > 1 else form.get(key) for key in form}


@pages.post("/cases/{case_id}/transitions")
async def transition_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("case.transition")),
) -> Response:
    data = _blank_to_none(await _form(request))
    if data.get("to_status") == REOPENED and not PERMISSIONS.permits(principal, "case.reopen"):
        return await _case_page(
            request,
            principal,
            case_id,
            error={"message": "Only a supervisor may reopen a case.", "rule": "case.reopen"},
            form="transition",
            status_code=403,
        )
    return await _submit(
        request,
        principal,
        case_id,
        form_name="transition",
        action="case.transition",
        model=TransitionCreate,
        build=lambda body: actions.transition(body, principal.user),
        data=data,
    )


@pages.post("/cases/{case_id}/assignments")
async def assignment_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("case.assign")),
) -> Response:
    return await _submit(
        request,
        principal,
        case_id,
        form_name="assignment",
        action="case.assign",
        model=AssignmentCreate,
        build=lambda body: actions.assign(body, principal.user),
        data=_blank_to_none(await _form(request)),
    )


@pages.post("/cases/{case_id}/suspects")
async def suspect_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("suspect.create")),
) -> Response:
    data = _blank_to_none(await _form(request))
    aliases = data.pop("aliases", None) or ""
    data["aliases"] = [a.strip() for a in str(aliases).split(",") if a.strip()]
    cipher = _cw(request).cipher
    return await _submit(
        request,
        principal,
        case_id,
        form_name="suspect",
        action="suspect.create",
        model=SuspectCreate,
        build=lambda body: actions.add_suspect(body, principal.user, cipher)[1],
        data={"details": data},
    )


@pages.post("/cases/{case_id}/arrests")
async def arrest_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("arrest.create")),
) -> Response:
    return await _submit(
        request,
        principal,
        case_id,
        form_name="arrest",
        action="arrest.create",
        model=ArrestCreate,
        build=lambda body: actions.record_arrest(body, principal.user),
        data=_blank_to_none(await _form(request)),
    )


def _codes(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


@pages.post("/cases/{case_id}/charges")
async def charge_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("charge.create")),
) -> Response:
    data = _blank_to_none(await _form(request))
    data["offence_codes"] = _codes(data.get("offence_codes"))
    offences = _cw(request).offences
    return await _submit(
        request,
        principal,
        case_id,
        form_name="charge",
        action="charge.create",
        model=ChargeCreate,
        build=lambda body: actions.record_charge(body, principal.user, offences),
        data=data,
    )


@pages.post("/cases/{case_id}/court-outcomes")
async def court_outcome_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("court_outcome.create")),
) -> Response:
    data = _blank_to_none(await _form(request))
    codes = _codes(data.pop("offence_codes", None))
    data["offence_codes"] = codes or None  # none ticked: the offences charged
    years, months = data.pop("sentence_years", None), data.pop("sentence_months", None)
    if years is not None or months is not None:
        data["sentence"] = {"years": years or 0, "months": months or 0}
    offences = _cw(request).offences
    return await _submit(
        request,
        principal,
        case_id,
        form_name="court-outcome",
        action="court_outcome.create",
        model=CourtOutcomeCreate,
        build=lambda body: actions.record_court_outcome(body, principal.user, offences),
        data=data,
    )


@pages.post("/cases/{case_id}/victim-services")
async def victim_service_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("victim_service.create")),
) -> Response:
    return await _submit(
        request,
        principal,
        case_id,
        form_name="victim-service",
        action="victim_service.create",
        model=VictimServiceCreate,
        build=lambda body: actions.record_victim_service(body, principal.user),
        data=_blank_to_none(await _form(request)),
    )


@pages.post("/cases/{case_id}/first-contact")
async def first_contact_form(
    case_id: uuid.UUID,
    request: Request,
    principal: Principal = Depends(ui.page("first_contact.create")),
) -> Response:
    data = _blank_to_none(await _form(request))
    data["contacted_at"] = _local_time(data.get("contacted_at"))
    return await _submit(
        request,
        principal,
        case_id,
        form_name="first-contact",
        action="first_contact.create",
        model=FirstContactCreate,
        build=lambda body: actions.record_first_contact(body, principal.user),
        data=data,
    )


@pages.get("/overdue", response_class=HTMLResponse)
async def overdue_page(
    request: Request,
    principal: Principal = Depends(ui.page("first_contact.overdue")),
) -> HTMLResponse:
    report = await overdue_report(_tx(request), _cw(request), principal, request=request)
    return render(request, "overdue.html", {**_common(principal), "report": report})
