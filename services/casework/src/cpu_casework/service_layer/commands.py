"""Officers' commands and reads on cases, shared by the API and the pages.

Record-level access. A case - and everything hanging off it: children, suspects, outcomes,
services, evidence, deadlines - is visible only to principals for whom
:func:`cpu_shared.security.permissions.can_see_record` holds, with the case's teams as its
assigned teams and its province as its province: supervisors see every case; investigators and
victim-support officers only cases one of their teams is on (the teams triage named plus every
team that has led the case: a team keeps access to what it recorded), and, if their token
names provinces, only cases in those provinces. A case the caller may not see is answered
exactly like a case that does not exist (404, :class:`CaseNotFound`), so ids cannot be probed;
the attempt is audited as ``denied``.

Audit. Every read and every write of a case adds an audit row in the same transaction as the
access (a write refused by a case rule still records the access); each disclosure of a
suspect's decrypted details adds its own ``suspect.read`` row.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.adapters import queries
from cpu_casework.adapters.repository import CaseRepository, aware
from cpu_casework.adapters.schemas import (
    CaseDetail,
    CasePage,
    OverdueReport,
    OverdueTask,
    OverdueTeam,
    SuspectDetails,
)
from cpu_casework.domain.case import Case
from cpu_casework.domain.deadlines import FirstContactTask, overdue_by_team
from cpu_casework.domain.errors import CaseworkError
from cpu_casework.service_layer.context import UNASSIGNED, Casework
from cpu_casework.service_layer.publishing import publish_case_events
from cpu_casework.service_layer.views import case_detail, open_suspect, summary
from cpu_shared.logging import get_logger
from cpu_shared.security.audit import record_access
from cpu_shared.security.auth import Principal
from cpu_shared.security.permissions import can_see_record

log = get_logger(__name__)

Transaction = Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]]
RECORD_TYPE = "case"


class CaseNotFound(Exception):
    """No such case, or one the caller may not see (the two are not told apart)."""


def may_see(principal: Principal, teams: Sequence[str], province: str | None) -> bool:
    """The record-level rule for a case with these teams and this province."""
    return can_see_record(principal, assigned_teams=teams, province=province)


def correlation_id_of(request: Request | None) -> str:
    """The request's correlation id (set by the middleware from ``X-Correlation-ID`` or made
    up), which the events of the command carry; a fresh one outside a request."""
    from asgi_correlation_id import correlation_id

    value = correlation_id.get() if request is not None else None
    return value or uuid.uuid4().hex


@dataclass
class CommandResult:
    detail: CaseDetail
    result: Any
    changed: bool


async def _load_visible(
    repo: CaseRepository,
    session: AsyncSession,
    principal: Principal,
    case_id: str,
    *,
    action: str,
    request: Request | None,
    for_update: bool,
) -> Case | None:
    case = await repo.get(case_id, for_update=for_update)
    if case is None or not may_see(principal, case.teams, case.province_code):
        record_access(
            session,
            principal,
            action=action,
            record_type=RECORD_TYPE,
            record_id=case_id,
            request=request,
            outcome="denied",
        )
        if case is not None:
            log.info("case not visible to caller", case_id=case_id, user=principal.user)
        return None
    record_access(
        session,
        principal,
        action=action,
        record_type=RECORD_TYPE,
        record_id=case_id,
        request=request,
    )
    return case


async def _detail(
    session: AsyncSession,
    repo: CaseRepository,
    case: Case,
    cw: Casework,
    principal: Principal,
    *,
    reveal_suspects: bool,
    request: Request | None,
) -> CaseDetail:
    items, events = await queries.evidence_of(session, repo.pseudonym_of(case))
    details: dict[str, SuspectDetails] | None = None
    if reveal_suspects:
        details = {}
        for suspect in case.suspects.values():
            details[suspect.suspect_id] = open_suspect(
                cw.cipher, suspect.suspect_id, suspect.details_ref
            )
            record_access(
                session,
                principal,
                action="suspect.read",
                record_type="suspect",
                record_id=suspect.suspect_id,
                request=request,
            )
    return case_detail(
        case,
        policy=cw.policy,
        now=cw.clock(),
        evidence_items=items,
        evidence_events=events,
        suspect_details=details,
    )


async def read_case(
    transaction: Transaction,
    cw: Casework,
    principal: Principal,
    case_id: str,
    *,
    reveal_suspects: bool,
    request: Request | None = None,
) -> CaseDetail:
    async with transaction() as session:
        repo = cw.repository(session)
        case = await _load_visible(
            repo,
            session,
            principal,
            case_id,
            action="case.read",
            request=request,
            for_update=False,
        )
        if case is not None:
            return await _detail(
                session,
                repo,
                case,
                cw,
                principal,
                reveal_suspects=reveal_suspects,
                request=request,
            )
    raise CaseNotFound(case_id)


async def run_command(
    transaction: Transaction,
    cw: Casework,
    principal: Principal,
    case_id: str,
    *,
    action: str,
    command: Callable[[Case, datetime], Any],
    reveal_suspects: bool,
    request: Request | None = None,
) -> CommandResult:
    """Load the case (locked), check the caller may see it, run ``command(case, now)``,
    publish its events and save, all in one transaction.

    A :class:`CaseworkError` from the command is raised after the transaction committed the
    audit row (and nothing else); :class:`CaseNotFound` likewise.
    """
    error: CaseworkError | None = None
    async with transaction() as session:
        repo = cw.repository(session)
        case = await _load_visible(
            repo, session, principal, case_id, action=action, request=request, for_update=True
        )
        if case is not None:
            try:
                result = command(case, cw.clock())
            except CaseworkError as exc:
                error = exc
            else:
                events = case.pull_events()
                publish_case_events(
                    session, repo, case, events, cw, correlation_id=correlation_id_of(request)
                )
                if events:
                    await repo.save(case)
                detail = await _detail(
                    session,
                    repo,
                    case,
                    cw,
                    principal,
                    reveal_suspects=reveal_suspects,
                    request=request,
                )
                if events:
                    log.info("case updated", case_id=case_id, action=action, version=case.version)
                return CommandResult(detail, result, bool(events))
    if error is not None:
        log.info("case command refused", case_id=case_id, action=action, rule=error.rule)
        raise error
    raise CaseNotFound(case_id)


async def list_cases(
    transaction: Transaction,
    cw: Casework,
    principal: Principal,
    filters: queries.CaseFilters,
    *,
    limit: int,
    offset: int,
    request: Request | None = None,
    action: str = "case.list",
) -> CasePage:
    """A page of the cases the caller may see; each case listed is audited."""
    async with transaction() as session:
        rows, total = await queries.list_cases(
            session, principal, filters, limit=limit, offset=offset
        )
        ids = [row.id for row in rows]
        teams = await queries.teams_of(session, ids)
        referrals = await queries.referrals_of(session, ids)
        items = []
        for row in rows:
            # The SQL filter and the rule must agree; if they ever do not, the rule wins.
            if not may_see(principal, sorted(teams[row.id]), row.province_code):
                log.error("visibility filter let through a case the rule refuses", case_id=row.id)
                total -= 1
                continue
            record_access(
                session,
                principal,
                action=action,
                record_type=RECORD_TYPE,
                record_id=row.id,
                request=request,
            )
            items.append(summary(row, referrals[row.id]))
        return CasePage(items=items, total=total, limit=limit, offset=offset)


async def caseload(transaction: Transaction, principal: Principal) -> list[tuple[str, str, int]]:
    """Open cases the caller may see, counted by lead team and province (codes only)."""
    async with transaction() as session:
        return await queries.caseload(session, principal)


def _task(row: Any) -> FirstContactTask:
    return FirstContactTask(
        case_id=row.case_id,
        child_id=row.child_id,
        priority=row.priority,
        team=row.team,
        province_code=row.province_code,
        received_at=aware(row.received_at),  # type: ignore[arg-type]
        due_at=aware(row.due_at),  # type: ignore[arg-type]
        contacted_at=aware(row.contacted_at),
        case_closed=row.case_closed,
    )


async def overdue_report(
    transaction: Transaction,
    cw: Casework,
    principal: Principal,
    *,
    team: str | None = None,
    request: Request | None = None,
) -> OverdueReport:
    """Overdue first-contact tasks per team, of the cases the caller may see."""
    now = cw.clock()
    async with transaction() as session:
        tasks = [_task(row) for row in await queries.open_tasks(session)]
        grouped = overdue_by_team(tasks, now)
        facts = await queries.case_access_facts(
            session, sorted({t.case_id for items in grouped.values() for t in items})
        )
        teams: list[OverdueTeam] = []
        listed: set[str] = set()
        for team_code, items in sorted(grouped.items(), key=lambda kv: kv[0] or "~"):
            label = team_code or UNASSIGNED
            if team is not None and label != team:
                continue
            visible = [
                t for t in items if t.case_id in facts and may_see(principal, *facts[t.case_id])
            ]
            if not visible:
                continue
            listed.update(t.case_id for t in visible)
            teams.append(
                OverdueTeam(
                    team=label,
                    tasks=[
                        OverdueTask(
                            case_id=t.case_id,
                            child_id=t.child_id,
                            priority=t.priority,
                            province_code=t.province_code,
                            received_at=t.received_at,
                            due_at=t.due_at,
                            overdue_hours=round((now - t.due_at).total_seconds() / 3600, 1),
                        )
                        for t in visible
                    ],
                )
            )
        for case_id in sorted(listed):
            record_access(
                session,
                principal,
                action="first_contact.overdue",
                record_type=RECORD_TYPE,
                record_id=case_id,
                request=request,
            )
        return OverdueReport(as_of=now, teams=teams)


async def refresh_overdue_metric(
    sessions: Callable[[], contextlib.AbstractAsyncContextManager[AsyncSession]], cw: Casework
) -> dict[str, int]:
    """Set the overdue gauge from the store (all cases; the metric has team labels only)."""
    async with sessions() as session:
        tasks = [_task(row) for row in await queries.open_tasks(session)]
    return cw.metrics.set_overdue(tasks, cw.clock())
