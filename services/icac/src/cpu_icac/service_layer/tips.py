"""The analysts' side: the triage queue, a tip with its reasons and cluster, claim, release and
disposition. Rules are the domain's (:mod:`cpu_icac.domain.workflow`); this module loads the
tip under a row lock, applies the rule, stores the new state, the action and the event.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_icac.adapters import repository as repo
from cpu_icac.adapters import store
from cpu_icac.adapters.tables import OPEN_STATUSES, TipAction
from cpu_icac.domain.hash_sets import CATEGORY_LABELS
from cpu_icac.domain.priority import REASON_TEXTS
from cpu_icac.domain.tip_report import TipReport
from cpu_icac.domain.workflow import (
    TipClosed as DomainTipClosed,
)
from cpu_icac.domain.workflow import (
    TipEscalated as DomainTipEscalated,
)
from cpu_icac.domain.workflow import (
    TipTriage,
    WorkflowError,
    claim,
    dispose,
    release,
)
from cpu_icac.service_layer.context import Icac
from cpu_icac.service_layer.ingest import event_row
from cpu_shared.contracts.icac import TipClosed, TipEscalated
from cpu_shared.security.crypto import field_context

ACTIONS: sa.Table = TipAction.__table__  # type: ignore[attr-defined]
STATUSES = ("queued", "claimed", "escalated", "closed")
LEVELS = ("P1", "P2", "P3", "informational")
CLUSTER_MEMBERS_SHOWN = 100


class TipNotFound(LookupError):
    pass


@dataclass(frozen=True)
class TipFilters:
    priority: str | None = None
    status: str | None = None  # None: the queue (queued and claimed)
    province: str | None = None
    provider: str | None = None
    report_id: str | None = None
    cluster_id: uuid.UUID | None = None


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "provider": row.provider,
        "report_id": row.report_id,
        "priority": row.priority,
        "score": row.score,
        "status": row.status,
        "incident_type": row.incident_type,
        "province_code": row.province_code,
        "country_code": row.country_code,
        "in_jurisdiction": row.in_jurisdiction,
        "cluster_id": str(row.cluster_id),
        "hash_match_count": row.hash_match_count,
        "received_at": store.aware(row.received_at),
        "claimed_by": row.claimed_by,
        "version": row.version,
    }


async def list_tips(
    session: AsyncSession, filters: TipFilters, *, limit: int, offset: int
) -> dict[str, Any]:
    """Tips in queue order: priority (P1 first), then the oldest first, then id."""
    t = repo.TIPS
    query = sa.select(t)
    if filters.status is None:
        query = query.where(t.c.status.in_(OPEN_STATUSES))
    else:
        query = query.where(t.c.status == filters.status)
    if filters.priority is not None:
        query = query.where(t.c.priority == filters.priority)
    if filters.province is not None:
        query = query.where(t.c.province_code == filters.province)
    if filters.provider is not None:
        query = query.where(t.c.provider == filters.provider)
    if filters.report_id is not None:
        query = query.where(t.c.report_id == filters.report_id)
    if filters.cluster_id is not None:
        query = query.where(t.c.cluster_id == filters.cluster_id)
    total = (
        await session.execute(sa.select(sa.func.count()).select_from(query.subquery()))
    ).scalar_one()
    rows = await session.execute(
        query.order_by(t.c.priority_rank, t.c.received_at, t.c.id).limit(limit).offset(offset)
    )
    return {
        "items": [_summary(r) for r in rows],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def reasons_of(reasons_json: str) -> list[dict[str, Any]]:
    return [
        {"code": code, "points": points, "text": REASON_TEXTS.get(code, code)}
        for code, points in json.loads(reasons_json)
    ]


async def _tip_row(session: AsyncSession, tip_id: uuid.UUID, *, for_update: bool = False) -> Any:
    query = sa.select(repo.TIPS).where(repo.TIPS.c.id == tip_id)
    if for_update and store.is_postgres(session):
        query = query.with_for_update()
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise TipNotFound(str(tip_id))
    return row


async def read_cluster(session: AsyncSession, cluster_id: uuid.UUID) -> dict[str, Any]:
    t = repo.TIPS
    row = (
        await session.execute(sa.select(repo.CLUSTERS).where(repo.CLUSTERS.c.id == cluster_id))
    ).one_or_none()
    members = (
        await session.execute(
            sa.select(t)
            .where(t.c.cluster_id == cluster_id)
            .order_by(t.c.received_at, t.c.id)
            .limit(CLUSTER_MEMBERS_SHOWN)
        )
    ).all()
    if row is None and not members:
        raise TipNotFound(str(cluster_id))
    return {
        "id": str(cluster_id),
        "size": row.size if row is not None else len(members),
        "linked_by": [k for k in row.linked_by.split(",") if k] if row is not None else [],
        "tips": [_summary(m) for m in members],
    }


async def read_tip(icac: Icac, session: AsyncSession, tip_id: uuid.UUID) -> dict[str, Any]:
    """Everything an analyst sees of a tip, the decrypted report included."""
    row = await _tip_row(session, tip_id)
    versions = (
        await session.execute(
            sa.select(repo.VERSIONS)
            .where(repo.VERSIONS.c.tip_id == tip_id)
            .order_by(repo.VERSIONS.c.version)
        )
    ).all()
    current = next(v for v in versions if v.id == row.current_version_id)
    # Every field of the model, absent ones as null (a report is stored without them).
    report = TipReport.model_validate_json(
        icac.cipher.decrypt(
            current.report, context=field_context("icac_tip_version", "report", str(current.id))
        )
    ).model_dump(mode="json")
    matches = (
        await session.execute(
            sa.select(repo.MATCHES)
            .where(repo.MATCHES.c.tip_id == tip_id)
            .order_by(repo.MATCHES.c.file_index, repo.MATCHES.c.hash_set)
        )
    ).all()
    actions = (
        await session.execute(
            sa.select(ACTIONS).where(ACTIONS.c.tip_id == tip_id).order_by(ACTIONS.c.id)
        )
    ).all()
    cluster = await read_cluster(session, row.cluster_id)
    return {
        **_summary(row),
        "fingerprint": row.fingerprint,
        "source": row.source,
        "updated_at": store.aware(row.updated_at),
        "annotations": [a for a in row.annotations.split(",") if a],
        "provider_priority": row.provider_priority,
        "incident_at": store.aware(row.incident_at),
        "victim_count": row.victim_count,
        "youngest_victim_age": row.youngest_victim_age,
        "file_count": row.file_count,
        "priority_score": row.score,
        "priority_floor": row.priority_floor,
        "priority_reasons": reasons_of(row.reasons),
        "jurisdiction": {
            "in_jurisdiction": row.in_jurisdiction,
            "no_jurisdiction_candidate": not row.in_jurisdiction,
            "country_code": row.country_code,
            "province_code": row.province_code,
            "home_indicators": [c for c in row.home_indicators.split(",") if c],
            "foreign_countries": [c for c in row.foreign_countries.split(",") if c],
        },
        "hash_matches": [
            {
                "hash_set": m.hash_set,
                "algorithm": m.algorithm,
                "distance": m.distance,
                "category": m.category,
                "category_label": CATEGORY_LABELS.get(m.category)
                if m.category is not None
                else None,
                "file_index": m.file_index,
            }
            for m in matches
        ],
        "cluster": cluster,
        "claimed_at": store.aware(row.claimed_at),
        "disposition": row.disposition,
        "disposed_by": row.disposed_by,
        "disposed_at": store.aware(row.disposed_at),
        "duplicate_of": str(row.duplicate_of) if row.duplicate_of else None,
        "versions": [
            {
                "version": v.version,
                "fingerprint": v.fingerprint,
                "received_at": store.aware(v.received_at),
                "source": v.source,
                "provenance": v.provenance,
                "received_by": v.received_by,
            }
            for v in versions
        ],
        "actions": [
            {
                "action": a.action,
                "by": a.by_user,
                "at": store.aware(a.at),
                "disposition": a.disposition,
                "duplicate_of": str(a.duplicate_of) if a.duplicate_of else None,
                "previous_claimant": a.previous_claimant,
            }
            for a in actions
        ],
        "report": report,
    }


# --- workflow ----------------------------------------------------------------------------------


def _triage(row: Any) -> TipTriage:
    return TipTriage(
        tip_id=str(row.id),
        priority=row.priority,
        received_at=store.aware(row.received_at),  # type: ignore[arg-type]
        incident_type=row.incident_type,
        cluster_id=str(row.cluster_id),
        province_code=row.province_code,
        victim_count=row.victim_count,
        youngest_victim_age=row.youngest_victim_age,
        status=row.status,
        claimed_by=row.claimed_by,
        claimed_at=store.aware(row.claimed_at),
        disposition=row.disposition,
        disposed_by=row.disposed_by,
        disposed_at=store.aware(row.disposed_at),
        duplicate_of=str(row.duplicate_of) if row.duplicate_of else None,
    )


def _state_values(tip: TipTriage) -> dict[str, Any]:
    return {
        "status": tip.status,
        "claimed_by": tip.claimed_by,
        "claimed_at": tip.claimed_at,
        "disposition": tip.disposition,
        "disposed_by": tip.disposed_by,
        "disposed_at": tip.disposed_at,
        "duplicate_of": uuid.UUID(tip.duplicate_of) if tip.duplicate_of else None,
    }


async def _save(
    session: AsyncSession,
    tip: TipTriage,
    *,
    action: str,
    by: str,
    at: datetime,
    extra: dict[str, Any] | None = None,
    **action_values: Any,
) -> None:
    values = _state_values(tip) | (extra or {})
    await session.execute(
        sa.update(repo.TIPS).where(repo.TIPS.c.id == uuid.UUID(tip.tip_id)).values(**values)
    )
    await session.execute(
        sa.insert(ACTIONS).values(
            tip_id=uuid.UUID(tip.tip_id), action=action, by_user=by, at=at, **action_values
        )
    )


async def claim_tip(
    icac: Icac, session: AsyncSession, tip_id: uuid.UUID, analyst: str
) -> dict[str, Any]:
    row = await _tip_row(session, tip_id, for_update=True)
    now = icac.clock()
    before = _triage(row)
    tip = claim(before, analyst=analyst, now=now, claim_ttl=icac.claim_ttl)
    await _save(
        session,
        tip,
        action="claim",
        by=analyst,
        at=now,
        previous_claimant=before.claimed_by if before.claimed_by != analyst else None,
    )
    return {
        "id": str(tip_id),
        "status": tip.status,
        "claimed_by": tip.claimed_by,
        "claimed_at": now,
    }


async def release_tip(
    icac: Icac, session: AsyncSession, tip_id: uuid.UUID, analyst: str, *, force: bool
) -> dict[str, Any]:
    row = await _tip_row(session, tip_id, for_update=True)
    now = icac.clock()
    before = _triage(row)
    tip = release(before, analyst=analyst, force=force)
    await _save(
        session, tip, action="release", by=analyst, at=now, previous_claimant=before.claimed_by
    )
    return {"id": str(tip_id), "status": tip.status, "claimed_by": None}


async def dispose_tip(
    icac: Icac,
    session: AsyncSession,
    tip_id: uuid.UUID,
    analyst: str,
    *,
    disposition: str,
    duplicate_of: uuid.UUID | None,
    correlation_id: str | None,
) -> dict[str, Any]:
    """Record the disposition and, in the same transaction, its event: ``tip.escalated``
    (casework opens a case from it) or ``tip.closed``."""
    row = await _tip_row(session, tip_id, for_update=True)
    if duplicate_of is not None and duplicate_of != tip_id:
        original = (
            await session.execute(sa.select(repo.TIPS.c.id).where(repo.TIPS.c.id == duplicate_of))
        ).scalar_one_or_none()
        if original is None:
            raise WorkflowError("duplicate_original_unknown", "the original tip does not exist")
    now = icac.clock()
    tip, event = dispose(
        _triage(row),
        analyst=analyst,
        disposition=disposition,
        now=now,
        duplicate_of=str(duplicate_of) if duplicate_of else None,
    )
    version = row.event_version + 1
    tip_ps = icac.tip_pseudonym(str(tip_id))
    if isinstance(event, DomainTipEscalated):
        summary = event.summary
        youngest = summary.youngest_victim_age
        data: TipEscalated | TipClosed = TipEscalated(
            tip_id=tip_ps,
            priority=summary.priority,
            incident_type=summary.incident_type,  # type: ignore[arg-type]
            province_code=summary.province_code,
            cluster_id=icac.cluster_pseudonym(summary.cluster_id),
            victim_count=summary.victim_count,
            # The contract counts children: an estimate of 18 or more is not a child's age.
            youngest_victim_age=youngest if youngest is not None and youngest <= 17 else None,
            escalated_at=event.at,
        )
    else:
        assert isinstance(event, DomainTipClosed)
        data = TipClosed(tip_id=tip_ps, disposition=event.disposition, closed_at=event.at)
    await _save(
        session,
        tip,
        action="dispose",
        by=analyst,
        at=now,
        extra={"event_version": version},
        disposition=disposition,
        duplicate_of=duplicate_of,
    )
    await store.copy_rows(
        session,
        repo.OUTBOX,
        repo.OUTBOX_COLUMNS,
        [event_row(icac, data, version, correlation_id or str(uuid.uuid4()), now)],
    )
    icac.metrics.dispositions.labels(disposition).inc()
    return {
        "id": str(tip_id),
        "status": tip.status,
        "disposition": tip.disposition,
        "disposed_by": tip.disposed_by,
        "disposed_at": now,
        "duplicate_of": tip.duplicate_of,
        "event": data.event_type,
    }
