"""HTTP routes of the icac service under ``/api/v1`` (CONTRACT.md section 5).

Every route names its action in :mod:`cpu_icac.permissions` and writes an audit row in the
transaction of what it reads or changes. Ids in paths are UUIDs; nothing personal ever travels
in a URL (filters are codes and report numbers).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from cpu_icac.domain.hash_sets import HashSetError
from cpu_icac.domain.media import MEDIA_REFUSED, sniff_media
from cpu_icac.domain.tip_report import TipReport, TipReportError, parse_tip_report, safe_report_id
from cpu_icac.domain.workflow import WorkflowError
from cpu_icac.permissions import PERMISSIONS
from cpu_icac.service_layer import hash_sets, imports, quarantine, tips
from cpu_icac.service_layer.context import Icac
from cpu_icac.service_layer.ingest import Incoming, ingest
from cpu_icac.service_layer.quarantine import Rejected
from cpu_shared.logging import get_logger
from cpu_shared.security.audit import record_access
from cpu_shared.security.auth import Principal
from cpu_shared.service import ServiceRuntime

log = get_logger(__name__)

router = APIRouter(tags=["icac"])

PROVIDER_PATTERN = r"^(ncmec|hsi|interpol|esp:[a-z0-9][a-z0-9._-]{0,62})$"
REPORT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
PROVINCE_PATTERN = r"^(0[1-9]|1[0-9]|2[0-5])$"
HASH_SET_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9 ._:()-]{0,99}$"
IMPORT_MEDIA_TYPES = (
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
    "application/json-seq",
    "application/xml",
    "text/xml",
    "text/plain",
)

Level = Literal["P1", "P2", "P3", "informational"]
Status = Literal["queued", "claimed", "escalated", "closed"]


def icac_of(request: Request) -> Icac:
    return request.app.state.icac  # type: ignore[no-any-return]


def runtime_of(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _correlation(request: Request) -> str | None:
    from asgi_correlation_id import correlation_id

    return correlation_id.get()


def _audit(
    session: Any,
    principal: Principal,
    request: Request,
    action: str,
    record_type: str,
    record_id: str | None,
) -> None:
    """Every read and write of a tip leaves an audit row in the request's transaction."""
    record_access(
        session,
        principal,
        action=action,
        record_type=record_type,
        record_id=record_id,
        request=request,
    )


def _conflict(exc: WorkflowError) -> HTTPException:
    return HTTPException(409, f"{exc.rule}: {exc}")


# --- ingest ------------------------------------------------------------------------------------


@router.post(
    "/tips",
    status_code=201,
    summary="Submit one tip report (JSON, CONTRACT.md section 6)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TipReport.model_json_schema()}},
        }
    },
    responses={
        200: {"description": "Already held (unchanged) or a new version of a held report"},
        415: {"description": "Not JSON, or an image or video"},
        422: {"description": "The report is refused (kept in quarantine with the reason)"},
    },
)
async def submit_tip(
    request: Request, principal: Principal = Depends(PERMISSIONS.require("tip.create"))
) -> JSONResponse:
    icac = icac_of(request)
    runtime = runtime_of(request)
    body = await request.body()
    kind = sniff_media(body[:64])
    if kind is not None:
        raise HTTPException(415, f"{MEDIA_REFUSED} (the body is {kind})")
    try:
        report = parse_tip_report(body)
    except TipReportError as exc:
        async with runtime.transaction() as session:
            await _first_statement(session)
            (qid,) = await quarantine.quarantine(
                icac,
                session,
                [
                    Rejected(
                        channel="api",
                        reason_code=exc.code,
                        reason=exc.reason,
                        provenance="api",
                        received_by=principal.user,
                        report_id=_report_id_of(body),
                        raw=body,
                        raw_sha256=quarantine.raw_digest(body),
                    )
                ],
                icac.clock(),
            )
            _audit(session, principal, request, "tip.create", "quarantine", str(qid))
        icac.metrics.reports.labels("api", "rejected").inc()
        return JSONResponse(
            {"detail": exc.reason, "code": exc.code, "quarantine_id": str(qid)}, status_code=422
        )
    item = Incoming(
        report=report,
        fingerprint=report.content_fingerprint(),
        channel="api",
        provenance="api",
        received_by=principal.user,
        correlation_id=_correlation(request),
    )
    async with runtime.transaction() as session:
        (outcome,) = await ingest(icac, session, [item])
        _audit(session, principal, request, "tip.create", "tip", str(outcome.tip_id))
    return JSONResponse(
        {
            "tip_id": str(outcome.tip_id),
            "id": str(outcome.tip_id),
            "provider": report.provider,
            "report_id": report.report_id,
            "status": outcome.status,
            "priority": outcome.priority,
        },
        status_code=201 if outcome.status == "created" else 200,
    )


async def _first_statement(session: Any) -> None:
    from cpu_icac.adapters import store

    await store.lock(session, store.INGEST_LOCK)


def _report_id_of(body: bytes) -> str | None:
    import json

    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return safe_report_id(obj.get("report_id")) if isinstance(obj, dict) else None


@router.post(
    "/tips/import",
    summary="Import a file of tip reports: JSON lines, CyberTipline XML or a CMT JSON export",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in IMPORT_MEDIA_TYPES
            },
        }
    },
    responses={
        200: {"description": "What became of each report"},
        400: {"description": "Unsafe or malformed file: refused whole, nothing stored"},
        413: {"description": "Over the size limit: refused whole"},
        415: {"description": "Not a known format, or an image or video"},
    },
)
async def import_tips(
    request: Request,
    format: Literal["jsonl", "cybertip_xml", "cmt_json"] | None = Query(default=None),
    provider: str | None = Query(default=None, pattern=PROVIDER_PATTERN),
    report_id: str | None = Query(default=None, pattern=REPORT_ID_PATTERN),
    principal: Principal = Depends(PERMISSIONS.require("tip.import")),
) -> JSONResponse:
    icac = icac_of(request)
    runtime = runtime_of(request)
    answer = await imports.run_import(
        icac,
        runtime.transaction,
        request.stream(),
        principal,
        format=format,
        provider=provider,
        report_id=report_id,
        request=request,
        correlation_id=_correlation(request),
    )
    return JSONResponse(
        answer.body,
        status_code=answer.status_code,
        headers={"Location": f"/api/v1/tip-imports/{answer.import_id}"},
    )


@router.get("/tip-imports", summary="Recent import jobs, newest first")
async def list_imports(
    request: Request,
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
    principal: Principal = Depends(PERMISSIONS.require("tip_import.read")),
) -> dict[str, Any]:
    async with runtime_of(request).transaction() as session:
        jobs = await imports.list_jobs(session, limit=limit, offset=offset)
        _audit(session, principal, request, "tip_import.read", "tip_import", None)
    return {"items": jobs, "limit": limit, "offset": offset}


@router.get("/tip-imports/{import_id}", summary="An import job: status, progress, refusal")
async def read_import(
    request: Request,
    import_id: uuid.UUID,
    principal: Principal = Depends(PERMISSIONS.require("tip_import.read")),
) -> dict[str, Any]:
    async with runtime_of(request).transaction() as session:
        job = await imports.read_job(session, import_id)
        if job is None:
            raise HTTPException(404, "no such import")
        _audit(session, principal, request, "tip_import.read", "tip_import", str(import_id))
    return job


# --- the queue and a tip -----------------------------------------------------------------------


@router.get("/tips", summary="Tips in queue order (priority, then the oldest first)")
async def list_tips(
    request: Request,
    priority: Level | None = Query(default=None),
    status: Status | None = Query(default=None, description="default: the queue (queued, claimed)"),
    province: str | None = Query(default=None, pattern=PROVINCE_PATTERN),
    provider: str | None = Query(default=None, pattern=PROVIDER_PATTERN),
    report_id: str | None = Query(default=None, pattern=REPORT_ID_PATTERN),
    cluster_id: uuid.UUID | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=10_000_000),
    principal: Principal = Depends(PERMISSIONS.require("tip.list")),
) -> dict[str, Any]:
    filters = tips.TipFilters(priority, status, province, provider, report_id, cluster_id)
    async with runtime_of(request).transaction() as session:
        page = await tips.list_tips(session, filters, limit=limit, offset=offset)
        _audit(session, principal, request, "tip.list", "tip", None)
    return page


@router.get("/tips/{tip_id}", summary="A tip: priority with reasons, cluster, hash matches, report")
async def read_tip(
    request: Request,
    tip_id: uuid.UUID,
    principal: Principal = Depends(PERMISSIONS.require("tip.read")),
) -> dict[str, Any]:
    icac = icac_of(request)
    async with runtime_of(request).transaction() as session:
        try:
            tip = await tips.read_tip(icac, session, tip_id)
        except tips.TipNotFound:
            raise HTTPException(404, "no such tip") from None
        _audit(session, principal, request, "tip.read", "tip", str(tip_id))
    return tip


@router.get("/clusters/{cluster_id}", summary="A subject cluster and its tips")
async def read_cluster(
    request: Request,
    cluster_id: uuid.UUID,
    principal: Principal = Depends(PERMISSIONS.require("cluster.read")),
) -> dict[str, Any]:
    async with runtime_of(request).transaction() as session:
        try:
            cluster = await tips.read_cluster(session, cluster_id)
        except tips.TipNotFound:
            raise HTTPException(404, "no such cluster") from None
        _audit(session, principal, request, "cluster.read", "tip_cluster", str(cluster_id))
    return cluster


@router.post("/tips/{tip_id}/claim", summary="Take a tip (or renew one's own claim)")
async def claim_tip(
    request: Request,
    tip_id: uuid.UUID,
    principal: Principal = Depends(PERMISSIONS.require("tip.claim")),
) -> dict[str, Any]:
    icac = icac_of(request)
    try:
        async with runtime_of(request).transaction() as session:
            result = await tips.claim_tip(icac, session, tip_id, principal.user)
            _audit(session, principal, request, "tip.claim", "tip", str(tip_id))
    except tips.TipNotFound:
        raise HTTPException(404, "no such tip") from None
    except WorkflowError as exc:
        raise _conflict(exc) from None
    return result


class ReleaseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    force: bool = Field(default=False, description="a supervisor releasing someone else's claim")


@router.post("/tips/{tip_id}/release", summary="Give a claimed tip back to the queue")
async def release_tip(
    request: Request,
    tip_id: uuid.UUID,
    body: ReleaseBody | None = None,
    principal: Principal = Depends(PERMISSIONS.require("tip.release")),
) -> dict[str, Any]:
    force = bool(body and body.force)
    if force and not principal.has_role("supervisor"):
        raise HTTPException(403, "only a supervisor may release another analyst's claim")
    icac = icac_of(request)
    try:
        async with runtime_of(request).transaction() as session:
            result = await tips.release_tip(icac, session, tip_id, principal.user, force=force)
            _audit(session, principal, request, "tip.release", "tip", str(tip_id))
    except tips.TipNotFound:
        raise HTTPException(404, "no such tip") from None
    except WorkflowError as exc:
        raise _conflict(exc) from None
    return result


class DispositionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disposition: Literal["actionable", "informational", "no_jurisdiction", "duplicate", "escalate"]
    duplicate_of: uuid.UUID | None = Field(
        default=None, description="for a duplicate: the original tip's id"
    )


@router.post(
    "/tips/{tip_id}/disposition",
    summary="Dispose of a claimed tip; escalate emits tip.escalated (casework opens a case)",
)
async def dispose_tip(
    request: Request,
    tip_id: uuid.UUID,
    body: DispositionBody,
    principal: Principal = Depends(PERMISSIONS.require("tip.dispose")),
) -> dict[str, Any]:
    icac = icac_of(request)
    try:
        async with runtime_of(request).transaction() as session:
            result = await tips.dispose_tip(
                icac,
                session,
                tip_id,
                principal.user,
                disposition=body.disposition,
                duplicate_of=body.duplicate_of,
                correlation_id=_correlation(request),
            )
            _audit(session, principal, request, "tip.dispose", "tip", str(tip_id))
    except tips.TipNotFound:
        raise HTTPException(404, "no such tip") from None
    except WorkflowError as exc:
        raise _conflict(exc) from None
    return result


# --- quarantine --------------------------------------------------------------------------------


@router.get("/quarantine", summary="Refused reports, newest first (reasons, no content)")
async def list_quarantine(
    request: Request,
    import_id: uuid.UUID | None = Query(default=None),
    source: Literal["kafka", "api", "import"] | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=10_000_000),
    principal: Principal = Depends(PERMISSIONS.require("quarantine.read")),
) -> dict[str, Any]:
    async with runtime_of(request).transaction() as session:
        page = await quarantine.list_quarantine(
            session, import_id=import_id, source=source, limit=limit, offset=offset
        )
        _audit(session, principal, request, "quarantine.read", "quarantine", None)
    return page


@router.get("/quarantine/{quarantine_id}", summary="A refused report, its raw text decrypted")
async def read_quarantined(
    request: Request,
    quarantine_id: uuid.UUID,
    principal: Principal = Depends(PERMISSIONS.require("quarantine.read")),
) -> dict[str, Any]:
    icac = icac_of(request)
    async with runtime_of(request).transaction() as session:
        found = await quarantine.read_quarantined(icac, session, quarantine_id)
        if found is None:
            raise HTTPException(404, "no such quarantined report")
        _audit(session, principal, request, "quarantine.read", "quarantine", str(quarantine_id))
    return found


# --- known-hash lists --------------------------------------------------------------------------


@router.get("/hash-sets", summary="The known-hash lists loaded")
async def list_hash_sets(
    request: Request, principal: Principal = Depends(PERMISSIONS.require("hash_set.list"))
) -> dict[str, Any]:
    async with runtime_of(request).transaction() as session:
        found = await hash_sets.list_hash_sets(session)
        _audit(session, principal, request, "hash_set.list", "hash_set", None)
    return {"items": found}


@router.post(
    "/hash-sets",
    status_code=201,
    summary="Load a known-hash list (Project VIC JSON or CSV); tips after it are matched",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "name"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "name": {"type": "string", "pattern": HASH_SET_NAME_PATTERN},
                        },
                    }
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "a Project VIC document itself (give ?name=)",
                    }
                },
            },
        }
    },
)
async def upload_hash_set(
    request: Request,
    name: Annotated[str | None, Query(pattern=HASH_SET_NAME_PATTERN)] = None,
    principal: Principal = Depends(PERMISSIONS.require("hash_set.upload")),
) -> dict[str, Any]:
    icac = icac_of(request)
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=2, max_part_size=4096)
        upload = form.get("file")
        field_name = form.get("name")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "file: a hash-set file is required")
        if not isinstance(field_name, str):
            raise HTTPException(422, "name: required")
        name = field_name.strip()
        data = await upload.read()
        await form.close()
    elif media == "application/json":
        data = await request.body()
    else:
        raise HTTPException(415, "content type must be multipart/form-data or application/json")
    if not name:
        raise HTTPException(422, "name: required")
    import re

    if not re.fullmatch(HASH_SET_NAME_PATTERN, name):
        raise HTTPException(422, "name: letters, digits, spaces and . _ : ( ) -, at most 100")
    kind = sniff_media(data[:64])
    if kind is not None:
        icac.metrics.files_refused.labels("hash_set", "media_refused").inc()
        raise HTTPException(415, f"{MEDIA_REFUSED} (the file is {kind})")
    try:
        parsed = hash_sets.parse_hash_set(data, name=name)
    except HashSetError as exc:
        icac.metrics.files_refused.labels("hash_set", "unreadable").inc()
        raise HTTPException(400, str(exc)) from None
    async with runtime_of(request).transaction() as session:
        stored = await hash_sets.store_hash_set(
            session, parsed, data=data, user=principal.user, now=icac.clock()
        )
        _audit(session, principal, request, "hash_set.upload", "hash_set", str(stored.id))
    log.info(
        "hash set stored",
        hash_set_id=str(stored.id),
        entries=stored.entries,
        skipped=stored.skipped,
        revision=stored.revision,
    )
    return stored.as_dict()
