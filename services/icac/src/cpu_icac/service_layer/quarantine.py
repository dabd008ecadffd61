"""Refused reports: kept with their reason, and their raw bytes ENCRYPTED, for the analyst who
must answer the provider ("what was wrong with report 123?") and for the record.

What is never kept: the bytes of a report refused for carrying a file (``file_payload``: they
are the image or video itself), bytes that may hold a file although no field was recognised as
one (not UTF-8 text, an image signature, a ``data:`` URI or a long base64 run anywhere:
``may_carry_file``), and raw reports over the domain's size cap. Each is noted in
``raw_omitted``, with the SHA-256 of what was received so the provider's copy can be matched.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_icac.adapters import repository as repo
from cpu_icac.adapters import store
from cpu_icac.adapters.ids import uuid7
from cpu_icac.domain.media import may_carry_file
from cpu_icac.domain.parsing import MAX_RAW_KEPT
from cpu_icac.service_layer.context import Icac
from cpu_shared.security.crypto import field_context


@dataclass(slots=True)
class Rejected:
    channel: str
    reason_code: str
    reason: str
    provenance: str | None = None
    received_by: str | None = None
    import_id: uuid.UUID | None = None
    item_index: int | None = None
    location: str | None = None
    report_id: str | None = None
    raw: bytes | None = None
    raw_sha256: str | None = None


def raw_digest(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


async def quarantine(
    icac: Icac, session: AsyncSession, rejected: Sequence[Rejected], now: datetime
) -> list[uuid.UUID]:
    """Store refused reports in the caller's transaction; their ids, in order."""
    rows: list[tuple[Any, ...]] = []
    ids = []
    for item in rejected:
        qid = uuid7()
        ids.append(qid)
        token = None
        omitted = None
        if item.reason_code in ("file_payload", "may_carry_file"):
            omitted = item.reason_code
        elif item.raw is None:
            omitted = "not_kept"
        elif len(item.raw) > MAX_RAW_KEPT:
            omitted = "too_large"
        elif may_carry_file(item.raw):
            omitted = "may_carry_file"
        else:
            token = icac.cipher.encrypt(
                base64.b64encode(item.raw).decode("ascii"),
                context=field_context("icac_quarantine", "raw", str(qid)),
            )
        values = {
            "id": qid,
            "received_at": now,
            "source": item.channel,
            "provenance": (item.provenance or "")[:200] or None,
            "received_by": item.received_by,
            "import_id": item.import_id,
            "item_index": item.item_index,
            "location": item.location,
            "report_id": item.report_id,
            "reason_code": item.reason_code[:32],
            "reason": item.reason,
            "raw": token,
            "raw_omitted": omitted,
            "raw_sha256": item.raw_sha256 or raw_digest(item.raw),
        }
        rows.append(tuple(values[c] for c in repo.QUARANTINE_COLUMNS))
        icac.metrics.rejections.labels(item.channel, item.reason_code).inc()
    await store.copy_rows(session, repo.QUARANTINE, repo.QUARANTINE_COLUMNS, rows)
    return ids


def _out(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "received_at": store.aware(row.received_at),
        "source": row.source,
        "provenance": row.provenance,
        "received_by": row.received_by,
        "import_id": str(row.import_id) if row.import_id else None,
        "item_index": row.item_index,
        "location": row.location,
        "report_id": row.report_id,
        "reason_code": row.reason_code,
        "reason": row.reason,
        "raw_kept": row.raw is not None,
        "raw_omitted": row.raw_omitted,
        "raw_sha256": row.raw_sha256,
    }


async def list_quarantine(
    session: AsyncSession,
    *,
    import_id: uuid.UUID | None,
    source: str | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    query = sa.select(repo.QUARANTINE)
    if import_id is not None:
        query = query.where(repo.QUARANTINE.c.import_id == import_id)
    if source is not None:
        query = query.where(repo.QUARANTINE.c.source == source)
    total = (
        await session.execute(sa.select(sa.func.count()).select_from(query.subquery()))
    ).scalar_one()
    rows = await session.execute(
        query.order_by(repo.QUARANTINE.c.received_at.desc(), repo.QUARANTINE.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return {"items": [_out(r) for r in rows], "total": total, "limit": limit, "offset": offset}


async def read_quarantined(
    icac: Icac, session: AsyncSession, qid: uuid.UUID
) -> dict[str, Any] | None:
    row = (
        await session.execute(sa.select(repo.QUARANTINE).where(repo.QUARANTINE.c.id == qid))
    ).one_or_none()
    if row is None:
        return None
    out = _out(row)
    out["raw"] = None
    if row.raw is not None:
        raw = base64.b64decode(
            icac.cipher.decrypt(row.raw, context=field_context("icac_quarantine", "raw", str(qid)))
        )
        try:
            out["raw"] = raw.decode("utf-8")
        except UnicodeDecodeError:
            out["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return out
