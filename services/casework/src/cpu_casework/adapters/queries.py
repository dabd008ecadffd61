"""Read-side queries: case lists, caseload counts, evidence of a case, open first-contact tasks.

List queries narrow the rows in SQL to what the principal may see (the same rule as
:func:`cpu_shared.security.permissions.can_see_record`, written as a WHERE clause so paging
and totals are right); the service layer still checks every row with ``can_see_record``
itself, so a mistake here can hide a case but never show one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.adapters.tables import (
    CaseReferralRow,
    CaseRow,
    CaseTeamRow,
    EvidenceEventRow,
    EvidenceItemRow,
    FirstContactTaskRow,
)
from cpu_casework.domain.lifecycle import OPEN_STATUSES
from cpu_shared.security.auth import Principal
from cpu_shared.security.roles import RECORD_ROLES, Role


def visibility_clause(principal: Principal) -> sa.ColumnElement[bool]:
    """The cases ``principal`` may see, as a condition on ``cases``."""
    if Role.supervisor in principal.roles:
        return sa.true()
    if principal.roles.isdisjoint(RECORD_ROLES) or not principal.teams:
        return sa.false()
    on_team = sa.exists().where(
        CaseTeamRow.case_id == CaseRow.id,
        CaseTeamRow.team.in_(sorted(principal.teams)),  # type: ignore[attr-defined]
    )
    if principal.provinces:
        return sa.and_(
            on_team,
            CaseRow.province_code.in_(sorted(principal.provinces)),  # type: ignore[union-attr]
        )
    return on_team


@dataclass(frozen=True)
class CaseFilters:
    referral_id: str | None = None  # intake's referral pseudonym
    tip_id: str | None = None  # ICAC's tip pseudonym, as tip.escalated carries it
    status: str | None = None
    province: str | None = None
    team: str | None = None
    open_only: bool = False


def _filtered(principal: Principal, filters: CaseFilters) -> sa.Select:  # type: ignore[type-arg]
    stmt = sa.select(CaseRow).where(visibility_clause(principal))
    if filters.referral_id is not None:
        stmt = stmt.where(
            CaseRow.id.in_(  # type: ignore[attr-defined]
                sa.select(CaseReferralRow.case_id).where(
                    CaseReferralRow.referral_id == filters.referral_id
                )
            )
        )
    if filters.tip_id is not None:
        stmt = stmt.where(CaseRow.origin == "tip", CaseRow.origin_id == filters.tip_id)
    if filters.status is not None:
        stmt = stmt.where(CaseRow.status == filters.status)
    if filters.open_only:
        stmt = stmt.where(CaseRow.status.in_(sorted(OPEN_STATUSES)))  # type: ignore[attr-defined]
    if filters.province is not None:
        stmt = stmt.where(CaseRow.province_code == filters.province)
    if filters.team is not None:
        stmt = stmt.where(
            sa.exists().where(CaseTeamRow.case_id == CaseRow.id, CaseTeamRow.team == filters.team)
        )
    return stmt


async def list_cases(
    session: AsyncSession, principal: Principal, filters: CaseFilters, *, limit: int, offset: int
) -> tuple[list[CaseRow], int]:
    """A page of visible cases matching ``filters`` (most recently opened first), and the total."""
    stmt = _filtered(principal, filters)
    page = stmt.order_by(CaseRow.opened_at.desc(), CaseRow.id).limit(limit).offset(offset)  # type: ignore[attr-defined]
    rows = list((await session.execute(page)).scalars())
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)  # the whole result is on this page: no need to count
    total = (
        await session.execute(sa.select(sa.func.count()).select_from(stmt.subquery()))
    ).scalar_one()
    return rows, int(total)


async def teams_of(session: AsyncSession, case_ids: Sequence[str]) -> dict[str, set[str]]:
    """The teams on each case (the visibility rule's input), for a page of cases."""
    if not case_ids:
        return {}
    rows = await session.execute(
        sa.select(CaseTeamRow.case_id, CaseTeamRow.team).where(
            CaseTeamRow.case_id.in_(list(case_ids))  # type: ignore[attr-defined]
        )
    )
    found: dict[str, set[str]] = {case_id: set() for case_id in case_ids}
    for case_id, team in rows:
        found[case_id].add(team)
    return found


async def referrals_of(session: AsyncSession, case_ids: Sequence[str]) -> dict[str, list[str]]:
    if not case_ids:
        return {}
    rows = await session.execute(
        sa.select(CaseReferralRow.case_id, CaseReferralRow.referral_id)
        .where(CaseReferralRow.case_id.in_(list(case_ids)))  # type: ignore[attr-defined]
        .order_by(CaseReferralRow.case_id, CaseReferralRow.seq)
    )
    found: dict[str, list[str]] = {case_id: [] for case_id in case_ids}
    for case_id, referral_id in rows:
        found[case_id].append(referral_id)
    return found


async def caseload(session: AsyncSession, principal: Principal) -> list[tuple[str, str, int]]:
    """Open cases the principal may see, counted by lead team and province."""
    team = sa.func.coalesce(CaseRow.lead_team, "")
    province = sa.func.coalesce(CaseRow.province_code, "")
    stmt = (
        sa.select(team, province, sa.func.count())
        .where(visibility_clause(principal))
        .where(CaseRow.status.in_(sorted(OPEN_STATUSES)))  # type: ignore[attr-defined]
        .group_by(team, province)
        .order_by(team, province)
    )
    return [(t, p, int(n)) for t, p, n in await session.execute(stmt)]


async def evidence_of(
    session: AsyncSession, case_pseudonym: str
) -> tuple[list[EvidenceItemRow], list[EvidenceEventRow]]:
    items = await session.execute(
        sa.select(EvidenceItemRow)
        .where(EvidenceItemRow.case_pseudonym == case_pseudonym)
        .order_by(EvidenceItemRow.registered_at, EvidenceItemRow.item_id)
    )
    events = await session.execute(
        sa.select(EvidenceEventRow)
        .where(EvidenceEventRow.case_pseudonym == case_pseudonym)
        .order_by(EvidenceEventRow.at, EvidenceEventRow.event_id)
    )
    return list(items.scalars()), list(events.scalars())


async def open_tasks(session: AsyncSession) -> list[FirstContactTaskRow]:
    """Every first-contact task still open (not done, case not closed)."""
    rows = await session.execute(
        sa.select(FirstContactTaskRow)
        .where(FirstContactTaskRow.status == "open")
        .order_by(FirstContactTaskRow.due_at)
    )
    return list(rows.scalars())


async def case_access_facts(
    session: AsyncSession, case_ids: Sequence[str]
) -> dict[str, tuple[set[str], str | None]]:
    """``case_id -> (teams, province)``: what the visibility rule needs, for many cases."""
    if not case_ids:
        return {}
    provinces = dict(
        (
            await session.execute(
                sa.select(CaseRow.id, CaseRow.province_code).where(
                    CaseRow.id.in_(list(case_ids))  # type: ignore[attr-defined]
                )
            )
        ).all()
    )
    teams = await teams_of(session, list(provinces))
    return {case_id: (teams[case_id], provinces[case_id]) for case_id in provinces}
