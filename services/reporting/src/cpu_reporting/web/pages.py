"""The dashboard under ``/ui/``: the figures of a period, charts by month and by province.

Server-rendered (Jinja2 and inline SVG), English and Khmer, no JavaScript needed; the form is a
plain GET. Same figures, same suppression and same audit as the API.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_reporting.domain.labels import LABELS
from cpu_reporting.entrypoints.http import (
    PROVINCE_PATTERN,
    audit_id,
    db_session,
    make_query,
    suppression_of,
)
from cpu_reporting.permissions import PERMISSIONS
from cpu_reporting.service_layer.reports import summary
from cpu_reporting.web.svg import bar_chart_svg
from cpu_shared.security.audit import record_access
from cpu_shared.security.auth import Principal
from cpu_shared.web import WebUI

HERE = Path(__file__).parent

ui = WebUI(
    service="reporting",
    title="Reporting",
    templates_dir=HERE / "templates",
    translations_dir=HERE / "translations",
    permissions=PERMISSIONS,
    nav=[("/ui/", "Dashboard")],
)
router = APIRouter(include_in_schema=False)

FIGURES = (
    "investigations",
    "arrests",
    "arrest_rate",
    "charged",
    "convictions",
    "sentence_years",
    "child_homicides",
    "children_legal_representation",
    "icac_tips_received",
    "icac_tips_actioned",
    "icac_tips_escalated",
    "evidence_items",
    "lab_analyses_completed",
    "median_days_referral_to_arrest",
    "median_days_referral_to_first_service",
)


def shown(value: Any, name: str = "") -> str:
    if value is None:
        return "-"
    if name == "arrest_rate" and isinstance(value, float):
        return f"{value:.0%}"
    return str(value)


@router.get("/", response_class=HTMLResponse)
async def dashboard(
    request: Request,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    province: Annotated[str | None, Query(pattern=PROVINCE_PATTERN)] = None,
    principal: Principal = Depends(ui.page("report.read")),
    session: AsyncSession = Depends(db_session),
) -> HTMLResponse:
    today = datetime.now(UTC).date()
    start = start or date(today.year, 1, 1)
    end = end or today
    try:
        query = make_query(request, start, end, province or None, None, None)
    except HTTPException as exc:
        return ui.render(
            request,
            "dashboard.html",
            {"error": exc.detail, "start": start, "end": end, "province": province},
            status_code=400,
        )
    doc = await summary(session, query, suppression_of(request))
    record_access(
        session,
        principal,
        action="report.read",
        record_type="report_dashboard",
        record_id=audit_id(query),
        request=request,
    )
    await session.commit()
    translate = ui.gettext(ui.language(request))
    months = doc.get("by_month", [])
    provinces = doc.get("by_province", [])
    month_chart = bar_chart_svg(
        "chart-month",
        translate("Investigations opened by month"),
        translate(
            "Investigations opened per month of the period; counts under the "
            "threshold are shown as text, not bars."
        ),
        [m["month"] for m in months],
        [m["investigations"] for m in months],
    )
    province_chart = bar_chart_svg(
        "chart-province",
        translate("Investigations opened by province"),
        translate("Investigations opened per province in the period."),
        [str(p["province"]) for p in provinces],
        [p["investigations"] for p in provinces],
    )
    return ui.render(
        request,
        "dashboard.html",
        {
            "doc": doc,
            "start": start,
            "end": end,
            "province": province or "",
            "figures": [(name, LABELS[name][0], shown(doc.get(name), name)) for name in FIGURES],
            "months": months,
            "provinces": provinces,
            "month_chart": Markup(month_chart),  # noqa: S704 - built from escaped parts
            "province_chart": Markup(province_chart),  # noqa: S704
            "shown": shown,
        },
    )
