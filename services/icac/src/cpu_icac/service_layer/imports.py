"""``POST /api/v1/tips/import``: a file of reports, refused whole or taken report by report.

1. Receive: the body is streamed to a private temporary file (in memory up to 8 MB), counting
   bytes: past ``ICAC_IMPORT_MAX_BYTES`` it is refused with 413 (the HTTP layer's body limit
   says so too, and a declared Content-Length over it is refused before a byte is read). An
   image or video is refused with 415 from its first bytes.
2. Scan: the whole file is parsed (hardened, streaming) before anything is stored. A file that
   is unsafe or unreadable (a DTD, an entity, an external reference, nesting past 64, malformed
   XML or CMT JSON, an unknown format) is refused WHOLE with the domain's status (400/413/415)
   and ``{"detail": ...}``: not one of its reports is stored, whatever order its good and bad
   parts come in. The refusal is kept on the job (``icac_tip_import``: code and reason, no
   content).
3. Store: the reports go through the triage pipeline ``ICAC_IMPORT_BATCH`` at a time, one
   transaction per batch (the consumer keeps flowing between them); refused reports go to
   quarantine with their reason. After each batch the job's counts are updated (in the same
   transaction) and a ``tip import progress`` log line gives counts only: a large import can be
   watched at ``GET /api/v1/tip-imports/{id}`` (its id is in the answer's ``Location``). Should
   the store fail half-way, what was committed stays and importing the file again finishes it:
   stored reports come back ``unchanged``.

The answer is CONTRACT.md section 6's, exactly: ``created``, ``updated``, ``unchanged``,
``rejected`` and one result per report.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_icac.adapters import store
from cpu_icac.adapters.ids import uuid7
from cpu_icac.adapters.tables import TipImport
from cpu_icac.domain.media import MEDIA_REFUSED, sniff_media
from cpu_icac.domain.parsing import (
    ImportItem,
    TipFileError,
    TipFileFormat,
    TipFileTooLarge,
    UnsupportedTipFormat,
    detect_format,
    iter_tip_file,
)
from cpu_icac.service_layer.context import Icac
from cpu_icac.service_layer.ingest import Incoming, ingest
from cpu_icac.service_layer.quarantine import Rejected, quarantine
from cpu_shared.logging import get_logger
from cpu_shared.security.audit import record_access
from cpu_shared.security.auth import Principal

log = get_logger(__name__)

JOBS: sa.Table = TipImport.__table__  # type: ignore[attr-defined]
SPOOL_IN_MEMORY = 8 * 1024 * 1024
KEEP_SCANNED = 5_000  # reports kept from the scan (a larger file is parsed a second time)

Transaction = Callable[[], AbstractAsyncContextManager[AsyncSession]]


@dataclass
class ImportAnswer:
    status_code: int
    body: dict[str, Any]
    import_id: uuid.UUID


@dataclass
class _Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.created + self.updated + self.unchanged + self.rejected


class _MediaRefused(TipFileError):
    http_status = 415
    code = "media_refused"


async def run_import(
    icac: Icac,
    transaction: Transaction,
    body: AsyncIterator[bytes],
    principal: Principal,
    *,
    format: TipFileFormat | None,
    provider: str | None,
    report_id: str | None,
    request: Any,
    correlation_id: str | None,
) -> ImportAnswer:
    settings = icac.settings
    job_id = uuid7()
    now = icac.clock()
    async with transaction() as session:
        await session.execute(
            sa.insert(JOBS).values(
                id=job_id, user_id=principal.user, started_at=now, status="receiving"
            )
        )
        record_access(
            session,
            principal,
            action="tip.import",
            record_type="tip_import",
            record_id=str(job_id),
            request=request,
        )
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    received = [0]
    try:
        try:
            await _receive(body, spool, settings.import_max_bytes, received)
            spool.seek(0)
            await _set(transaction, job_id, status="scanning", bytes_read=received[0])
            scanned, total, kept = await asyncio.to_thread(
                _scan, spool, format, provider, report_id, settings.import_max_bytes
            )
        except TipFileError as exc:
            await _refused(icac, transaction, job_id, exc, received[0])
            return ImportAnswer(exc.http_status, {"detail": str(exc)}, job_id)
        except Exception as exc:
            # The HTTP layer's body limit (413) stops the stream from inside: record it.
            status = getattr(exc, "status_code", None)
            if status == 413:
                too_large = TipFileTooLarge(str(getattr(exc, "detail", "too large")))
                await _refused(icac, transaction, job_id, too_large, received[0])
            raise
        await _set(transaction, job_id, status="storing", format=scanned, total=total)
        log.info("tip import scanned", import_id=str(job_id), format=scanned, reports=total)
        spool.seek(0)
        items: Iterator[ImportItem] = (
            iter(kept)
            if kept is not None
            else iter_tip_file(
                spool,
                format=scanned,
                provider=provider,
                report_id=report_id,
                max_bytes=settings.import_max_bytes,
            )
        )
        counts = _Counts()
        while True:
            batch = await asyncio.to_thread(_take, items, settings.import_batch)
            if not batch:
                break
            async with transaction() as session:
                await _store_batch(
                    icac, session, job_id, batch, counts, principal, request, correlation_id
                )
                await session.execute(
                    sa.update(JOBS)
                    .where(JOBS.c.id == job_id)
                    .values(
                        done=counts.done,
                        created=counts.created,
                        updated=counts.updated,
                        unchanged=counts.unchanged,
                        rejected=counts.rejected,
                    )
                )
            log.info(
                "tip import progress",
                import_id=str(job_id),
                done=counts.done,
                total=total,
                created=counts.created,
                updated=counts.updated,
                unchanged=counts.unchanged,
                rejected=counts.rejected,
            )
        await _set(transaction, job_id, status="completed", finished_at=icac.clock())
        log.info(
            "tip import completed",
            import_id=str(job_id),
            reports=counts.done,
            created=counts.created,
            updated=counts.updated,
            unchanged=counts.unchanged,
            rejected=counts.rejected,
        )
        return ImportAnswer(
            200,
            {
                "created": counts.created,
                "updated": counts.updated,
                "unchanged": counts.unchanged,
                "rejected": counts.rejected,
                "results": counts.results,
            },
            job_id,
        )
    except BaseException:
        await asyncio.shield(_fail_if_unfinished(transaction, job_id))
        raise
    finally:
        spool.close()


async def _receive(
    body: AsyncIterator[bytes], spool: IO[bytes], limit: int, counter: list[int]
) -> None:
    received = 0
    first = True
    async for chunk in body:
        if not chunk:
            continue
        if first:
            first = False
            kind = sniff_media(chunk[:64])
            if kind is not None:
                raise _MediaRefused(f"{MEDIA_REFUSED} (the file is {kind})")
        received += len(chunk)
        counter[0] = received
        if received > limit:
            raise TipFileTooLarge(f"the file is larger than the limit of {limit} bytes")
        spool.write(chunk)
    if received == 0:
        raise UnsupportedTipFormat("the file is empty")


def _scan(
    spool: IO[bytes],
    format: TipFileFormat | None,
    provider: str | None,
    report_id: str | None,
    max_bytes: int,
) -> tuple[TipFileFormat, int, list[ImportItem] | None]:
    """Parse the whole file once; the format, the number of reports, and the reports when
    there are few enough to keep."""
    if format is None:
        head = b""
        while len(head) < 64:
            chunk = spool.read(64 * 1024)
            if not chunk:
                break
            head = (head + chunk).removeprefix(b"\xef\xbb\xbf").lstrip()
        spool.seek(0)
        if not head:
            raise UnsupportedTipFormat("the file is empty")
        format = detect_format(head)
    kept: list[ImportItem] | None = []
    total = 0
    for item in iter_tip_file(
        spool, format=format, provider=provider, report_id=report_id, max_bytes=max_bytes
    ):
        total += 1
        if kept is not None:
            kept.append(item)
            if len(kept) > KEEP_SCANNED:
                kept = None
    return format, total, kept


def _take(items: Iterator[ImportItem], n: int) -> list[ImportItem]:
    return list(islice(items, n))


async def _store_batch(
    icac: Icac,
    session: AsyncSession,
    job_id: uuid.UUID,
    batch: list[ImportItem],
    counts: _Counts,
    principal: Principal,
    request: Any,
    correlation_id: str | None,
) -> None:
    now = icac.clock()
    good = [item for item in batch if item.report is not None]
    incoming = [
        Incoming(
            report=item.report,  # type: ignore[arg-type]
            fingerprint=item.report.content_fingerprint(),  # type: ignore[union-attr]
            channel="import",
            provenance=f"import:{job_id}#{item.index}",
            received_by=principal.user,
            correlation_id=correlation_id,
        )
        for item in good
    ]
    # Lock first: quarantine rows and COPY need a statement already run in the transaction.
    await store.lock(session, store.INGEST_LOCK)
    outcomes = iter(await ingest(icac, session, incoming))
    refused = [item for item in batch if item.report is None]
    quarantined = await quarantine(
        icac,
        session,
        [
            Rejected(
                channel="import",
                reason_code=item.rejection.code if item.rejection else "invalid_report",
                reason=item.rejection.reason if item.rejection else "invalid report",
                provenance=f"import:{job_id}#{item.index}",
                received_by=principal.user,
                import_id=job_id,
                item_index=item.index,
                location=item.location,
                report_id=item.report_id,
                raw=item.raw,
            )
            for item in refused
        ],
        now,
    )
    quarantine_ids = iter(quarantined)
    for item in batch:
        if item.report is None:
            counts.rejected += 1
            next(quarantine_ids)
            counts.results.append(
                {
                    "index": item.index,
                    "report_id": item.report_id,
                    "status": "rejected",
                    "tip_id": None,
                    "reason": item.rejection.reason if item.rejection else "invalid report",
                }
            )
            continue
        outcome = next(outcomes)
        setattr(counts, outcome.status, getattr(counts, outcome.status) + 1)
        counts.results.append(
            {
                "index": item.index,
                "report_id": item.report.report_id,
                "status": outcome.status,
                "tip_id": str(outcome.tip_id),
                "reason": None,
            }
        )
        if outcome.status != "unchanged":
            record_access(
                session,
                principal,
                action="tip.import",
                record_type="tip",
                record_id=str(outcome.tip_id),
                request=request,
            )
    if refused:
        icac.metrics.reports.labels("import", "rejected").inc(len(refused))


async def _set(transaction: Transaction, job_id: uuid.UUID, **values: Any) -> None:
    async with transaction() as session:
        await session.execute(sa.update(JOBS).where(JOBS.c.id == job_id).values(**values))


async def _refused(
    icac: Icac, transaction: Transaction, job_id: uuid.UUID, exc: TipFileError, received: int
) -> None:
    icac.metrics.files_refused.labels("tip_import", exc.code).inc()
    log.warning("tip import refused", import_id=str(job_id), code=exc.code, bytes=received)
    await _set(
        transaction,
        job_id,
        status="refused",
        finished_at=icac.clock(),
        bytes_read=received,
        refusal_code=exc.code,
        refusal_reason=str(exc)[:1000],
    )


async def _fail_if_unfinished(transaction: Transaction, job_id: uuid.UUID) -> None:
    try:
        async with transaction() as session:
            await session.execute(
                sa.update(JOBS)
                .where(JOBS.c.id == job_id, JOBS.c.status.in_(("receiving", "scanning", "storing")))
                .values(status="failed")
            )
    except Exception as exc:  # the store may be what failed
        log.warning("tip import not marked failed", import_id=str(job_id), error=type(exc).__name__)


async def read_job(session: AsyncSession, job_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await session.execute(sa.select(JOBS).where(JOBS.c.id == job_id))).one_or_none()
    return job_out(row) if row is not None else None


async def list_jobs(session: AsyncSession, *, limit: int, offset: int) -> list[dict[str, Any]]:
    rows = await session.execute(
        sa.select(JOBS).order_by(JOBS.c.started_at.desc()).limit(limit).offset(offset)
    )
    return [job_out(r) for r in rows]


def job_out(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "user": row.user_id,
        "status": row.status,
        "format": row.format,
        "bytes": row.bytes_read,
        "total": row.total,
        "done": row.done,
        "created": row.created,
        "updated": row.updated,
        "unchanged": row.unchanged,
        "rejected": row.rejected,
        "refusal_code": row.refusal_code,
        "refusal_reason": row.refusal_reason,
        "started_at": store.aware(row.started_at),
        "finished_at": store.aware(row.finished_at),
    }
