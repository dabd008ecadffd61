"""The intake officers' pages under ``/ui``: the referral form, today's referrals, one referral
with its possible matches.

Server-rendered (Jinja2), in English and Khmer, small enough for a slow connection, and
complete without JavaScript; htmx (vendored, no inline script) only spares full page loads.
Every page goes through the same handlers as the API, so the same permission table, record
rule and audit trail apply. Forms post ``application/x-www-form-urlencoded`` only: intake
accepts no file, so a multipart body is refused with 415 before it is read.
"""

# No `from __future__ import annotations`: FastAPI must see the page dependencies, which
# close over the local `ui`, as objects rather than strings.

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from cpu_intake.adapters.public import MatchPublic, ReferralPublic
from cpu_intake.adapters.repository import ListFilters
from cpu_intake.domain.decisions import MatchDecisionCreate
from cpu_intake.domain.messages import MESSAGES, OfficerFacingError, officer_errors
from cpu_intake.domain.provinces import provinces
from cpu_intake.domain.referral import (
    CAMBODIA_TZ,
    CONCERNS,
    SOURCES,
    ReferralCreate,
    cambodia_date,
)
from cpu_intake.permissions import CREATE, LIST, MATCH_DECIDE, MATCHES_READ, PERMISSIONS, READ
from cpu_intake.service_layer import referrals
from cpu_intake.service_layer.referrals import Intake, ReferralNotFound
from cpu_intake.web.forms import ReferralForm, attach_errors, read_form, referral_data
from cpu_shared.security.auth import Principal
from cpu_shared.web import WebUI

HERE = Path(__file__).parent
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_FIELDS = 600  # 20 children x 10 fields, 20 perpetrators x 4, and the rest

# English labels of the codes; the Khmer is in translations/km.po under the same text.
SOURCE_LABELS = {
    "helpline_1288": "1288 helpline",
    "police": "Police",
    "ngo": "NGO",
    "school": "School",
    "health_facility": "Health facility",
    "community": "Community",
    "walk_in": "Walk-in",
    "online": "Online",
    "other": "Other source",
}
CONCERN_LABELS = {
    "sexual_abuse": "Sexual abuse",
    "rape": "Rape",
    "physical_abuse": "Physical abuse",
    "neglect": "Neglect",
    "trafficking": "Trafficking",
    "online_exploitation": "Online exploitation",
    "homicide": "Homicide",
    "abduction": "Abduction",
    "domestic_violence": "Domestic violence",
    "child_labour": "Child labour",
    "other": "Other concern",
}
SEX_LABELS = {"unknown": "Not known", "female": "Female", "male": "Male", "other": "Other"}
STATUS_LABELS = {
    "submitted": "Submitted",
    "triaged": "Triaged",
    "linked": "Linked to an earlier referral",
    "case_opened": "Case opened",
    "withdrawn": "Withdrawn",
}
REASON_LABELS = {
    "name_exact": "Same name",
    "name_fuzzy": "Name nearly the same",
    "phonetic": "Name sounds the same",
    "name_partial": "Part of the name the same",
    "name_km": "Same Khmer name",
    "name_km_skeleton": "Khmer name nearly the same",
    "dob_exact": "Same date of birth",
    "age_close": "Similar age",
    "village": "Same village",
    "commune": "Same commune",
    "reporter_phone": "Same reporter's phone",
}
assert set(SOURCE_LABELS) == set(SOURCES) and set(CONCERN_LABELS) == set(CONCERNS)


async def intake_of(request: Request) -> Intake:
    return request.app.state.intake


IntakeDep = Annotated[Intake, Depends(intake_of)]


def build_ui() -> tuple[WebUI, APIRouter]:
    """The WebUI of intake and the router of its pages (mounted under ``/ui``)."""
    ui = WebUI(
        service="intake",
        title="Intake",
        templates_dir=HERE / "templates",
        translations_dir=HERE / "translations",
        permissions=PERMISSIONS,
        nav=[("/ui/referrals", "Today's referrals"), ("/ui/referrals/new", "New referral")],
    )
    router = APIRouter(include_in_schema=False)

    def render(request: Request, name: str, context: dict[str, Any], **kw: Any) -> HTMLResponse:
        response = ui.render(request, name, context, **kw)
        # A child's details on a shared office computer: never from a cache or the back button.
        response.headers["Cache-Control"] = "no-store"
        return response

    def labels(request: Request) -> dict[str, Any]:
        lang = ui.language(request)
        return {
            "source_labels": SOURCE_LABELS,
            "concern_labels": CONCERN_LABELS,
            "sex_labels": SEX_LABELS,
            "status_labels": STATUS_LABELS,
            "reason_labels": REASON_LABELS,
            "provinces": [
                (p.code, p.name_km if lang == "km" else p.name_en) for p in provinces().values()
            ],
            "province_names": {
                p.code: (p.name_km if lang == "km" else p.name_en) for p in provinces().values()
            },
            "say": (lambda problem: problem.km if lang == "km" else problem.en),
            "ict": CAMBODIA_TZ,
        }

    def message(request: Request, code: str, status_code: int) -> HTMLResponse:
        lang = ui.language(request)
        text = MESSAGES[code].render("km" if lang == "km" else "en")
        return render(request, "intake_message.html", {"text": text}, status_code=status_code)

    def form_page(request: Request, form: ReferralForm, status_code: int = 200) -> HTMLResponse:
        # htmx swaps only 2xx answers: a form with problems goes back as 200 to htmx (the
        # page is the same either way), as 422 to a browser without JavaScript.
        if status_code == 422 and request.headers.get("hx-request") == "true":
            status_code = 200
        return render(
            request,
            "intake_referral_form.html",
            {"form": form, **labels(request)},
            status_code=status_code,
        )

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/ui/referrals", status_code=303)

    @router.get("/referrals", response_class=HTMLResponse)
    async def today(
        request: Request,
        intake: IntakeDep,
        principal: Annotated[Principal, Depends(ui.page(LIST))],
    ) -> HTMLResponse:
        day = cambodia_date(datetime.now(UTC))
        page = await referrals.list_referrals(
            intake,
            principal,
            ListFilters(submitted_on=day, order="priority", limit=100),
            request=request,
        )
        return render(
            request,
            "intake_today.html",
            {
                "day": day,
                "items": page.items,
                "total": page.total,
                "can_create": PERMISSIONS.permits(principal, CREATE),
                **labels(request),
            },
        )

    @router.get("/referrals/new", response_class=HTMLResponse)
    async def new_referral(
        request: Request, _principal: Annotated[Principal, Depends(ui.page(CREATE))]
    ) -> HTMLResponse:
        return form_page(request, ReferralForm.blank(datetime.now(UTC)))

    @router.post("/referrals")
    async def submit_referral(
        request: Request,
        intake: IntakeDep,
        principal: Annotated[Principal, Depends(ui.page(CREATE))],
    ) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != FORM_MEDIA_TYPE:
            # No file about a child travels through intake: multipart is never parsed.
            return message(request, "unsupported_media_type", 415)
        raw = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
        form, action = read_form({key: raw.getlist(key) for key in raw})  # type: ignore[misc]
        if action is not None:
            return form_page(request, form)
        try:
            details = ReferralCreate.model_validate(referral_data(form))
        except ValidationError as exc:
            attach_errors(form, officer_errors(exc))
            return form_page(request, form, status_code=422)
        created = await referrals.submit(intake, principal, details, request=request)
        return RedirectResponse(f"/ui/referrals/{created.id}?created=1", status_code=303)

    @router.get("/referrals/{referral_id}", response_class=HTMLResponse)
    async def show_referral(
        referral_id: str,
        request: Request,
        intake: IntakeDep,
        principal: Annotated[Principal, Depends(ui.page(READ))],
    ) -> HTMLResponse:
        rid = _uuid(referral_id)
        if rid is None:
            return message(request, "referral_not_found", 404)
        try:
            referral = await referrals.get(intake, principal, rid, request=request)
            found: list[MatchPublic] = []
            if PERMISSIONS.permits(principal, MATCHES_READ):
                found = (await referrals.matches(intake, principal, rid, request=request)).matches
        except ReferralNotFound:
            return message(request, "referral_not_found", 404)
        error = request.query_params.get("error")
        lang = ui.language(request)
        return render(
            request,
            "intake_referral.html",
            {
                "referral": referral,
                "matches": found,
                "decisions": {d.referral_id: d for d in referral.match_decisions},
                "can_decide": PERMISSIONS.permits(principal, MATCH_DECIDE)
                and referral.status == "triaged",
                "created": request.query_params.get("created") == "1",
                "error": _refusal(error, lang, status=referral.status),
                "why": _triage_reasons(intake, referral, lang),
                **labels(request),
            },
        )

    @router.post("/referrals/{referral_id}/match-decision")
    async def decide(
        referral_id: str,
        request: Request,
        intake: IntakeDep,
        principal: Annotated[Principal, Depends(ui.page(MATCH_DECIDE))],
    ) -> Response:
        rid = _uuid(referral_id)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != FORM_MEDIA_TYPE:
            return message(request, "unsupported_media_type", 415)
        if rid is None:
            return message(request, "referral_not_found", 404)
        raw = await request.form(max_files=0, max_fields=10)
        target = f"/ui/referrals/{rid}"
        try:
            body = MatchDecisionCreate.model_validate(
                {"decision": raw.get("decision"), "referral_id": raw.get("referral_id")}
            )
            await referrals.decide_match(intake, principal, rid, body, request=request)
        except ValidationError:
            return RedirectResponse(f"{target}?error=match_not_a_candidate", status_code=303)
        except ReferralNotFound:
            return message(request, "referral_not_found", 404)
        except OfficerFacingError as exc:
            return RedirectResponse(f"{target}?error={exc.code}", status_code=303)
        return RedirectResponse(target, status_code=303)

    return ui, router


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def _refusal(code: str | None, lang: str, **context: Any) -> str | None:
    """The message of a refusal named by its code in the URL (codes only travel there)."""
    if code not in MESSAGES:
        return None
    try:
        return MESSAGES[code].render("km" if lang == "km" else "en", **context)
    except (KeyError, IndexError):  # a message needing context this page does not have
        return MESSAGES["invalid_value"].render("km" if lang == "km" else "en")


def _triage_reasons(intake: Intake, referral: ReferralPublic, lang: str) -> list[str]:
    """Why the referral has its priority and teams, in the page's language."""
    texts = []
    for rule_id in referral.rule_ids:
        try:
            rule = intake.rules.rule(rule_id)
        except KeyError:  # fired under an older rule table
            texts.append(rule_id)
            continue
        texts.append(rule.description.km if lang == "km" else rule.description.en)
    return texts
