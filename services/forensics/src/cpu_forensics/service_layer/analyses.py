"""Handlers of lab analyses: request, assignment, examination, result, sign-off, cancellation.

Same shape as the custody handlers (custody lock first, item visibility, domain decision,
writes, events, audit in one transaction). ``evidence.analysis_completed`` is published when a
second person signs the result off, with the result *code* only: the method and findings stay
here, encrypted.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import Request

from cpu_forensics.adapters.ledger_store import lock_ledger
from cpu_forensics.adapters.public import AnalysisCreate, AnalysisDecision, AnalysisExamination
from cpu_forensics.domain.analysis import (
    AnalysisStatus,
    LabAnalysis,
    assign_analyst,
    cancel_analysis,
    record_result,
    request_analysis,
    sign_off_result,
    start_analysis,
)
from cpu_forensics.domain.rules import InvalidValue
from cpu_forensics.service_layer.access import ANALYSIS_RECORD, NotFound, audit, visible_item
from cpu_forensics.service_layer.context import Forensics
from cpu_forensics.service_layer.custody import publish_item_event, refusals
from cpu_shared.contracts.forensics import EvidenceAnalysisCompleted, EvidenceAnalysisRequested
from cpu_shared.security.auth import Principal

REQUEST = "analysis.request"
READ = "analysis.read"
PERFORM = "analysis.perform"
DECIDE = "analysis.decide"


async def request(
    fx: Forensics, principal: Principal, item_id: str, body: AnalysisCreate, *, http: Request | None
) -> LabAnalysis:
    async with refusals(fx, principal, action=REQUEST, record_id=item_id, request=http):
        async with fx.runtime.transaction() as session:
            now = fx.now()
            await lock_ledger(session, now=now)
            repo = fx.repository(session)
            item = await visible_item(fx, repo, principal, item_id, action=REQUEST, request=http)
            analysis = request_analysis(
                item,
                analysis_id=str(uuid.uuid4()),
                type=body.type,
                requested_by=principal.user,
                purpose=body.purpose,
                at=now,
            )
            await repo.add_analysis(analysis)
            await publish_item_event(
                fx,
                session,
                repo,
                item.id,
                EvidenceAnalysisRequested(
                    analysis_id=fx.analysis_pseudonym(analysis.id),
                    item_id=fx.item_pseudonym(item.id),
                    case_id=fx.case_pseudonym(item.case_id),
                    analysis_type=analysis.type.value,  # type: ignore[arg-type]
                    requested_at=analysis.requested_at,
                ),
            )
            audit(session, principal, action=REQUEST, item_id=item.id, request=http)
            audit(
                session,
                principal,
                action=REQUEST,
                item_id=analysis.id,
                request=http,
                record_type=ANALYSIS_RECORD,
            )
    return analysis


async def list_for_item(
    fx: Forensics, principal: Principal, item_id: str, *, http: Request | None
) -> list[LabAnalysis]:
    async with refusals(fx, principal, action=READ, record_id=item_id, request=http):
        async with fx.runtime.transaction() as session:
            repo = fx.repository(session)
            item = await visible_item(fx, repo, principal, item_id, action=READ, request=http)
            analyses = await repo.analyses_of(item.id)
            audit(session, principal, action=READ, item_id=item.id, request=http)
    return analyses


async def _change(
    fx: Forensics,
    principal: Principal,
    item_id: str,
    analysis_id: str,
    *,
    action: str,
    http: Request | None,
    apply,  # type: ignore[no-untyped-def]
) -> LabAnalysis:
    async with refusals(fx, principal, action=action, record_id=item_id, request=http):
        async with fx.runtime.transaction() as session:
            now = fx.now()
            await lock_ledger(session, now=now)
            repo = fx.repository(session)
            item = await visible_item(fx, repo, principal, item_id, action=action, request=http)
            analysis = await repo.get_analysis(analysis_id)
            if analysis is None or analysis.item_id != item.id:
                raise NotFound("analysis")
            was = analysis.status
            apply(analysis, item, now)
            await repo.save_analysis(analysis)
            if (
                was is not AnalysisStatus.SIGNED_OFF
                and analysis.status is AnalysisStatus.SIGNED_OFF
            ):
                assert analysis.result is not None and analysis.signed_off_at is not None
                await publish_item_event(
                    fx,
                    session,
                    repo,
                    item.id,
                    EvidenceAnalysisCompleted(
                        analysis_id=fx.analysis_pseudonym(analysis.id),
                        item_id=fx.item_pseudonym(item.id),
                        case_id=fx.case_pseudonym(item.case_id),
                        analysis_type=analysis.type.value,  # type: ignore[arg-type]
                        result_code=analysis.result.result_code,
                        completed_at=analysis.signed_off_at,
                    ),
                )
            audit(
                session,
                principal,
                action=action,
                item_id=analysis.id,
                request=http,
                record_type=ANALYSIS_RECORD,
            )
    return analysis


async def examine(
    fx: Forensics,
    principal: Principal,
    item_id: str,
    analysis_id: str,
    body: AnalysisExamination,
    *,
    http: Request | None,
) -> LabAnalysis:
    """The assigned analyst starts the examination, then records the result."""
    if body.step == "start":
        return await _change(
            fx,
            principal,
            item_id,
            analysis_id,
            action=PERFORM,
            http=http,
            apply=lambda a, item, now: start_analysis(a, item, by_user=principal.user, at=now),
        )
    if body.method is None:
        raise InvalidValue("method", "a result needs the method used")
    if body.result_code is None:
        raise InvalidValue("result_code", "a result needs its code")
    method, code = body.method, body.result_code
    return await _change(
        fx,
        principal,
        item_id,
        analysis_id,
        action=PERFORM,
        http=http,
        apply=lambda a, _item, now: record_result(
            a,
            by_user=principal.user,
            method=method,
            result_code=code,
            summary=body.summary,
            at=now,
        ),
    )


async def decide(
    fx: Forensics,
    principal: Principal,
    item_id: str,
    analysis_id: str,
    body: AnalysisDecision,
    *,
    http: Request | None,
) -> LabAnalysis:
    """A lab lead assigns the analyst, signs a result off or sends it back, or cancels."""
    user = principal.user
    if body.decision == "assign":
        if body.analyst is None:
            raise InvalidValue("analyst", "say who is to analyse")
        analyst = body.analyst

        def apply(a: LabAnalysis, _item: object, now: datetime) -> None:
            assign_analyst(a, analyst=analyst, by_user=user, at=now)

    elif body.decision in ("sign_off", "send_back"):
        approve = body.decision == "sign_off"

        def apply(a: LabAnalysis, _item: object, now: datetime) -> None:
            sign_off_result(a, by_user=user, at=now, approve=approve, note=body.note)

    else:
        if body.note is None:
            raise InvalidValue("note", "say why the analysis is cancelled")
        reason = body.note

        def apply(a: LabAnalysis, _item: object, now: datetime) -> None:
            cancel_analysis(a, by_user=user, at=now, reason=reason)

    return await _change(fx, principal, item_id, analysis_id, action=DECIDE, http=http, apply=apply)
