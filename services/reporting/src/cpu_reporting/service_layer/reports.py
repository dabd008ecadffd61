"""Building the published summary for a period and filter (reads only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cpu_reporting.adapters.store import read_figures
from cpu_reporting.domain.report import Query, build_summary
from cpu_reporting.domain.suppression import Suppression


async def summary(
    session: AsyncSession, query: Query, suppression: Suppression, *, with_months: bool = True
) -> dict[str, Any]:
    data = await read_figures(session, query, with_months=with_months)
    as_of = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return build_summary(data, query, suppression, as_of=as_of)
