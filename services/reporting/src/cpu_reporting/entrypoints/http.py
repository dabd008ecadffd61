"""HTTP routes of the reporting service under ``/api/v1``.

* ``GET /reports/summary?from=YYYY-MM-DD&to=YYYY-MM-DD[&province=CODE][&team=T][&offence=CODE]``:
  the figures, broken down by province, offence, team and month (CONTRACT.md section 5).
* ``GET /reports/summary.csv`` (same parameters) and ``GET /reports/annual-report.pdf?year=Y``.

Every answer is suppressed (see ``domain/suppression.py``); every read and export is audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_reporting.adapters.csv_export import summary_csv
from cpu_reporting.adapters.pdf_report import annual_report_pdf
from cpu_reporting.domain import report
from cpu_reporting.domain.suppression import Suppression
from cpu_reporting.permissions import PERMISSIONS
from cpu_reporting.service_layer.reports import summary
from cpu_shared.security.audit import record_access
from cpu_shared.security.auth import Principal

router = APIRouter(tags=["reporting"])

PROVINCE_PATTERN = r"^(0[1-9]|1[0-9]|2[0-5])$"
OFFENCE_PATTERN = r"^[A-Z][A-Z0-9]{1,15}(-[0-9]{4})?-art-[1-9][0-9]{0,3}[a-z]?$"
TeamCode = Literal["OVCS", "HIT", "FST", "ICAC"]


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.runtime.sessions() as session:
        yield session


def suppression_of(request: Request) -> Suppression:
    return Suppression(request.app.state.runtime.settings.suppression_threshold)


def make_query(
    request: Request,
    start: date,
    end: date,
    province: str | None,
    team: str | None,
    offence: str | None,
) -> report.Query:
    if end < start:
        raise HTTPException(400, "'to' is before 'from'")
    limit = request.app.state.runtime.settings.max_period_days
    if (end - start).days >= limit:
        raise HTTPException(400, f"a period covers at most {limit} days")
    return report.Query(start=start, end=end, province=province, team=team, offence=offence)


class SummaryParams:
    """The query string of the summary and its CSV."""

    def __init__(
        self,
        start: Annotated[date, Query(alias="from", description="First day (YYYY-MM-DD)")],
        end: Annotated[date, Query(alias="to", description="Last day, included")],
        province: Annotated[str | None, Query(pattern=PROVINCE_PATTERN)] = None,
        team: Annotated[TeamCode | None, Query()] = None,
        offence: Annotated[str | None, Query(pattern=OFFENCE_PATTERN, max_length=40)] = None,
    ) -> None:
        self.start, self.end = start, end
        self.province, self.team, self.offence = province, team, offence

    def query(self, request: Request) -> report.Query:
        return make_query(request, self.start, self.end, self.province, self.team, self.offence)


def audit_id(query: report.Query) -> str:
    parts = [query.start.isoformat(), query.end.isoformat()]
    parts += [v for v in (query.province, query.team, query.offence) if v]
    return ":".join(parts)


async def _audited(
    session: AsyncSession,
    principal: Principal,
    request: Request,
    action: str,
    record_type: str,
    query: report.Query,
) -> None:
    record_access(
        session,
        principal,
        action=action,
        record_type=record_type,
        record_id=audit_id(query),
        request=request,
    )
    await session.commit()


@router.get("/reports/summary")
async def get_summary(
    request: Request,
    params: Annotated[SummaryParams, Depends()],
    principal: Principal = Depends(PERMISSIONS.require("report.read")),
    session: AsyncSession = Depends(db_session),
) -> dict[str, Any]:
    """The unit's figures for a period (suppressed), by province, offence, team and month."""
    query = params.query(request)
    doc = await summary(session, query, suppression_of(request))
    await _audited(session, principal, request, "report.read", "report_summary", query)
    return doc


@router.get("/reports/summary.csv")
async def get_summary_csv(
    request: Request,
    params: Annotated[SummaryParams, Depends()],
    principal: Principal = Depends(PERMISSIONS.require("report.export")),
    session: AsyncSession = Depends(db_session),
) -> Response:
    """The same figures as CSV (same suppression)."""
    query = params.query(request)
    doc = await summary(session, query, suppression_of(request))
    await _audited(session, principal, request, "report.export", "report_summary", query)
    name = f"cpu-summary-{query.start.isoformat()}-{query.end.isoformat()}.csv"
    return Response(
        summary_csv(doc).encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/reports/annual-report.pdf")
async def get_annual_report(
    request: Request,
    year: Annotated[int, Query(ge=1990, le=9998)],
    province: Annotated[str | None, Query(pattern=PROVINCE_PATTERN)] = None,
    principal: Principal = Depends(PERMISSIONS.require("report.export")),
    session: AsyncSession = Depends(db_session),
) -> Response:
    """The annual report for ``year``: figures, charts by month and province, in Khmer and
    English."""
    query = make_query(request, date(year, 1, 1), date(year, 12, 31), province, None, None)
    doc = await summary(session, query, suppression_of(request))
    await _audited(session, principal, request, "report.export", "annual_report", query)
    font = request.app.state.runtime.settings.khmer_font
    pdf = await asyncio.to_thread(annual_report_pdf, doc, font_path=font, year=year)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="cpu-annual-report-{year}.pdf"'},
    )
