"""Analysts' pages under ``/ui``: the triage queue, a tip (the reasons for its priority, its
cluster, its hash matches and the report) and the claim and disposition forms.

Pages run the same service-layer functions as the API, under the same permission table and
with the same audit rows; forms are plain HTML forms that work without JavaScript and answer
with a redirect (Post/Redirect/Get), or the tip page again with the rule that refused the
action. English and Khmer (``translations/km.po``); times in Cambodia's time (UTC+07:00).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cpu_icac.domain.workflow import WorkflowError
from cpu_icac.permissions import PERMISSIONS
from cpu_icac.service_layer import tips
from cpu_icac.service_layer.context import Icac
from cpu_shared.security.audit import record_access
from cpu_shared.security.auth import Principal
from cpu_shared.web import WebUI

HERE = Path(__file__).parent
PAGE_SIZE = 50
CAMBODIA_TZ = timezone(timedelta(hours=7), "ICT")

ui = WebUI(
    service="icac",
    title="ICAC tips",
    templates_dir=HERE / "templates",
    translations_dir=HERE / "translations",
    permissions=PERMISSIONS,
    nav=[("/ui/tips", "Triage queue")],
)
pages = APIRouter(include_in_schema=False)

STATUS_LABELS = {
    "queued": "Queued",
    "claimed": "Claimed",
    "escalated": "Escalated",
    "closed": "Closed",
}
DISPOSITION_LABELS = {
    "escalate": "Escalate to a case",
    "actionable": "Actionable",
    "informational": "Informational",
    "no_jurisdiction": "No jurisdiction (refer abroad)",
    "duplicate": "Duplicate of another tip",
}
INCIDENT_LABELS = {
    "child_sexual_abuse_material": "Child sexual abuse material",
    "online_enticement": "Online enticement",
    "child_sex_trafficking": "Child sex trafficking",
    "child_sex_tourism": "Child sex tourism",
    "child_sexual_molestation": "Child sexual molestation",
    "unsolicited_obscene_material_to_child": "Obscene material sent to a child",
    "misleading_domain_name": "Misleading domain name",
    "misleading_content": "Misleading words or images",
    "other": "Other",
}
PRIORITY_LABELS = {"P1": "P1", "P2": "P2", "P3": "P3", "informational": "Informational"}
LINK_LABELS = {
    "screen_name": "screen name",
    "email": "e-mail",
    "phone": "phone",
    "ip": "IP address (within 48 hours)",
    "md5": "file (MD5)",
    "sha1": "file (SHA-1)",
    "pdq": "file (PDQ)",
}
DONE_MESSAGES = {
    "claim": "You hold this tip.",
    "release": "The tip is back in the queue.",
    "dispose": "The disposition was recorded.",
}
REFERRER_POLICY = "same-origin"  # so a same-origin form POST carries its true Origin


def _ict(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(CAMBODIA_TZ).strftime("%Y-%m-%d %H:%M")


ui.templates.env.filters["ict"] = _ict


def install_pages(app: FastAPI) -> None:
    ui.install(app, pages)


def render(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    response = ui.render(request, name, context, status_code=status_code)
    response.headers["Referrer-Policy"] = REFERRER_POLICY
    return response


def _icac(request: Request) -> Icac:
    return request.app.state.icac  # type: ignore[no-any-return]


def _tx(request: Request) -> Any:
    return request.app.state.runtime.transaction


def _common(principal: Principal) -> dict[str, Any]:
    return {
        "can": {action: PERMISSIONS.permits(principal, action) for action in PERMISSIONS.actions},
        "status_labels": STATUS_LABELS,
        "disposition_labels": DISPOSITION_LABELS,
        "incident_labels": INCIDENT_LABELS,
        "priority_labels": PRIORITY_LABELS,
        "link_labels": LINK_LABELS,
        "provinces": [f"{n:02d}" for n in range(1, 26)],
        "levels": list(PRIORITY_LABELS),
    }


@pages.get("/", response_class=HTMLResponse)
async def home(_principal: Principal = Depends(ui.page("tip.list"))) -> Response:
    return RedirectResponse("/ui/tips", status_code=303)


@pages.get("/tips", response_class=HTMLResponse)
async def queue_page(
    request: Request,
    priority: str | None = None,
    status: str | None = None,
    province: str | None = None,
    page: int = 1,
    principal: Principal = Depends(ui.page("tip.list")),
) -> HTMLResponse:
    priority = priority if priority in PRIORITY_LABELS else None
    status = status if status in STATUS_LABELS else None
    province = province if province and province.isdigit() and 1 <= int(province) <= 25 else None
    page = max(1, min(page, 100_000))
    filters = tips.TipFilters(priority=priority, status=status, province=province)
    async with _tx(request)() as session:
        result = await tips.list_tips(
            session, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        record_access(
            session,
            principal,
            action="tip.list",
            record_type="tip",
            record_id=None,
            request=request,
        )
    query = {
        k: v for k, v in {"priority": priority, "status": status, "province": province}.items() if v
    }
    return render(
        request,
        "tips.html",
        {
            **_common(principal),
            "result": result,
            "filters": query,
            "page": page,
            "pages": max(1, -(-result["total"] // PAGE_SIZE)),
            "query": urlencode(query),
        },
    )


async def _tip_page(
    request: Request,
    principal: Principal,
    tip_id: uuid.UUID,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    async with _tx(request)() as session:
        try:
            tip = await tips.read_tip(_icac(request), session, tip_id)
        except tips.TipNotFound:
            return render(request, "not_found.html", _common(principal), status_code=404)
        record_access(
            session,
            principal,
            action="tip.read",
            record_type="tip",
            record_id=str(tip_id),
            request=request,
        )
    done = request.query_params.get("done")
    return render(
        request,
        "tip.html",
        {
            **_common(principal),
            "tip": tip,
            "error": error,
            "done": DONE_MESSAGES.get(done or ""),
            "mine": tip["claimed_by"] == principal.user,
            "is_open": tip["status"] in ("queued", "claimed"),
        },
        status_code=status_code,
    )


@pages.get("/tips/{tip_id}", response_class=HTMLResponse)
async def tip_page(
    request: Request, tip_id: uuid.UUID, principal: Principal = Depends(ui.page("tip.read"))
) -> HTMLResponse:
    return await _tip_page(request, principal, tip_id)


async def _act(
    request: Request,
    principal: Principal,
    tip_id: uuid.UUID,
    action: str,
    audit_action: str,
    run: Any,
) -> Response:
    try:
        async with _tx(request)() as session:
            await run(session)
            record_access(
                session,
                principal,
                action=audit_action,
                record_type="tip",
                record_id=str(tip_id),
                request=request,
            )
    except tips.TipNotFound:
        return render(request, "not_found.html", _common(principal), status_code=404)
    except WorkflowError as exc:
        return await _tip_page(request, principal, tip_id, error=exc.rule, status_code=409)
    return RedirectResponse(f"/ui/tips/{tip_id}?done={action}", status_code=303)


@pages.post("/tips/{tip_id}/claim")
async def claim_form(
    request: Request, tip_id: uuid.UUID, principal: Principal = Depends(ui.page("tip.claim"))
) -> Response:
    icac = _icac(request)
    return await _act(
        request,
        principal,
        tip_id,
        "claim",
        "tip.claim",
        lambda s: tips.claim_tip(icac, s, tip_id, principal.user),
    )


@pages.post("/tips/{tip_id}/release")
async def release_form(
    request: Request, tip_id: uuid.UUID, principal: Principal = Depends(ui.page("tip.release"))
) -> Response:
    icac = _icac(request)
    force = principal.has_role("supervisor")
    return await _act(
        request,
        principal,
        tip_id,
        "release",
        "tip.release",
        lambda s: tips.release_tip(icac, s, tip_id, principal.user, force=force),
    )


@pages.post("/tips/{tip_id}/disposition")
async def disposition_form(
    request: Request,
    tip_id: uuid.UUID,
    disposition: str = Form(..., max_length=32),
    duplicate_of: str = Form("", max_length=64),
    principal: Principal = Depends(ui.page("tip.dispose")),
) -> Response:
    if disposition not in DISPOSITION_LABELS:
        return await _tip_page(
            request, principal, tip_id, error="unknown_disposition", status_code=422
        )
    original: uuid.UUID | None = None
    if duplicate_of.strip():
        try:
            original = uuid.UUID(duplicate_of.strip())
        except ValueError:
            return await _tip_page(
                request, principal, tip_id, error="duplicate_needs_original", status_code=422
            )
    icac = _icac(request)
    from asgi_correlation_id import correlation_id

    return await _act(
        request,
        principal,
        tip_id,
        "dispose",
        "tip.dispose",
        lambda s: tips.dispose_tip(
            icac,
            s,
            tip_id,
            principal.user,
            disposition=disposition,
            duplicate_of=original,
            correlation_id=correlation_id.get(),
        ),
    )
