"""The forensic staff's pages under ``/ui``: register an item and print its label (a QR code
of its id), scan to transfer, pending acceptances, item history. English and Khmer.

Server-rendered, complete without JavaScript (one small script only wires the label's "print"
button). Every page goes through the same handlers as the API, so the same permission table,
record rule, custody rules and audit trail apply. Forms post
``application/x-www-form-urlencoded`` only: this service takes no file, so any other body is
refused with 415 before it is read.

"Scan to transfer": a handheld scanner reading the label's QR code types the item id into the
focused field and presses Enter, which opens the transfer form of that item.
"""

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import segno
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import MutableHeaders

from cpu_forensics.adapters.public import (
    EvidenceCreate,
    HashesIn,
    TransferAccept,
    TransferCancel,
    TransferCreate,
)
from cpu_forensics.domain.rules import DomainRuleBroken, InvalidValue
from cpu_forensics.permissions import PERMISSIONS
from cpu_forensics.service_layer import custody
from cpu_forensics.service_layer.access import ItemNotFound, NotFound
from cpu_forensics.service_layer.context import Forensics
from cpu_forensics.service_layer.custody import ConcurrentChange
from cpu_shared.security.auth import Principal
from cpu_shared.web import WebUI

HERE = Path(__file__).parent
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
ICT = ZoneInfo("Asia/Phnom_Penh")
#: What a label's QR code holds: an item id (never a path, a URL or text).
SCANNED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

TYPE_LABELS = {
    "biological_sample": "Biological sample",
    "blood": "Blood",
    "dna_extract": "DNA extract",
    "clothing": "Clothing",
    "document": "Document",
    "digital_device": "Digital device",
    "forensic_image": "Forensic image",
    "other": "Other item",
}
KIND_LABELS = {
    "registered": "Registered",
    "check_in": "Check-in to store",
    "transfer": "Transfer to a person",
    "sent_to_lab": "Sent to laboratory",
    "returned": "Returned",
    "court_exhibit": "Court exhibit",
    "released": "Released to owner",
    "destroyed": "Destroyed",
}
SEAL_LABELS = {"intact": "Intact", "damaged": "Damaged", "broken": "Broken", "missing": "Missing"}
STATUS_LABELS = {
    "in_custody": "In custody",
    "transfer_pending": "Awaiting acceptance",
    "disposed": "Disposed",
    "pending": "Awaiting acceptance",
    "accepted": "Accepted",
    "withdrawn": "Withdrawn",
    "refused": "Refused",
}
MOVE_KINDS = [k for k in KIND_LABELS if k != "registered"]


def qr_svg(item_id: str) -> str:
    """An inline SVG QR code of the item id (made here from our own id: safe to embed)."""
    return segno.make(item_id, error="m").svg_inline(scale=5, border=2, title=item_id)


def local_time(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(ICT).strftime("%Y-%m-%d %H:%M")


def parse_local(value: str | None, field: str) -> datetime | None:
    """A ``datetime-local`` value, in Cambodia time (what officers' clocks show)."""
    if not value:
        return None
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValue(field, "must be a date and time") from None
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    return naive.replace(tzinfo=ICT).astimezone(UTC)


async def read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_MEDIA_TYPE:
        raise HTTPException(415, "forms are sent as application/x-www-form-urlencoded")
    form = await request.form(max_files=0, max_fields=60)
    return {k: v.strip() for k, v in form.items() if isinstance(v, str)}


def _opt(value: str | None) -> str | None:
    return value if value else None


def build_ui(fx: Forensics) -> tuple["ForensicsUI", APIRouter]:
    ui = WebUI(
        service="forensics",
        title="Forensics",
        templates_dir=HERE / "templates",
        translations_dir=HERE / "translations",
        permissions=PERMISSIONS,
        nav=[
            ("/ui/", "Evidence"),
            ("/ui/evidence/new", "Register an item"),
            ("/ui/scan", "Scan to transfer"),
            ("/ui/pending", "Pending acceptances"),
        ],
    )
    router = APIRouter(include_in_schema=False)

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return ui.render(
            request,
            name,
            {
                "type_labels": TYPE_LABELS,
                "kind_labels": KIND_LABELS,
                "seal_labels": SEAL_LABELS,
                "status_labels": STATUS_LABELS,
                "local_time": local_time,
                **context,
            },
            status_code=status_code,
        )

    def refusal(exc: Exception) -> tuple[str, int]:
        if isinstance(exc, DomainRuleBroken):
            return f"{exc.rule}: {exc.message}", 409
        if isinstance(exc, InvalidValue):
            return f"{exc.field}: {exc.message}", 422
        if isinstance(exc, ValidationError):
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            return "; ".join(problems), 422
        if isinstance(exc, ConcurrentChange):
            return "concurrent_change: the item changed meanwhile; reload and try again", 409
        return "not found", 404

    @router.get("/", response_class=HTMLResponse)
    async def home(
        request: Request, principal: Annotated[Principal, Depends(ui.page("evidence.read"))]
    ) -> HTMLResponse:
        held = await custody.items_held(fx, principal, request=request)
        pending = (
            await custody.pending_for(fx, principal, request=request)
            if PERMISSIONS.permits(principal, "custody.accept")
            else []
        )
        return render(request, "forensics_home.html", held=held, pending=pending)

    # --- register and label -----------------------------------------------------------------

    @router.get("/evidence/new", response_class=HTMLResponse)
    async def new_item(
        request: Request, _principal: Annotated[Principal, Depends(ui.page("evidence.register"))]
    ) -> HTMLResponse:
        return render(request, "forensics_register.html", form={}, error=None)

    @router.post("/evidence", response_model=None)
    async def create_item(
        request: Request, principal: Annotated[Principal, Depends(ui.page("evidence.register"))]
    ) -> Response:
        form = await read_form(request)
        try:
            hashes = None
            if form.get("sha256") or form.get("md5") or form.get("sha1"):
                hashes = HashesIn(
                    sha256=form.get("sha256", ""),
                    md5=_opt(form.get("md5")),
                    sha1=_opt(form.get("sha1")),
                )
            body = EvidenceCreate(
                case_id=form.get("case_id", ""),
                type=form.get("type", ""),  # type: ignore[arg-type]
                description=form.get("description", ""),
                collected_by=_opt(form.get("collected_by")),
                collected_at=parse_local(form.get("collected_at"), "collected_at")
                or datetime.now(UTC),
                collected_location=form.get("collected_location", ""),
                seal_number=form.get("seal_number", ""),
                seal_condition=form.get("seal_condition") or "intact",  # type: ignore[arg-type]
                storage_location=form.get("storage_location", ""),
                parent_id=_opt(form.get("parent_id")),
                hashes=hashes,
                acquisition_tool=_opt(form.get("acquisition_tool")),
            )
            done = await custody.register(fx, principal, body, request=request)
        except (DomainRuleBroken, InvalidValue, ValidationError, ConcurrentChange) as exc:
            message, status = refusal(exc)
            return render(
                request, "forensics_register.html", status_code=status, form=form, error=message
            )
        return RedirectResponse(f"/ui/evidence/{done.item.id}/label", status_code=303)

    @router.get("/evidence/{item_id}/label", response_class=HTMLResponse)
    async def label(
        item_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(ui.page("evidence.read"))],
    ) -> HTMLResponse:
        try:
            item = await custody.read_item(fx, principal, item_id, request=request)
        except ItemNotFound:
            return render(request, "forensics_missing.html", status_code=404)
        return render(request, "forensics_label.html", item=item, qr=qr_svg(item.id))

    # --- scan to transfer --------------------------------------------------------------------

    @router.get("/scan", response_model=None)
    async def scan(
        request: Request,
        _principal: Annotated[Principal, Depends(ui.page("custody.transfer"))],
        item_id: str | None = None,
    ) -> Response:
        if item_id:
            scanned = item_id.strip()
            if SCANNED_ID.fullmatch(scanned):
                return RedirectResponse(f"/ui/evidence/{scanned}/transfer", status_code=303)
        return render(request, "forensics_scan.html", error=bool(item_id))

    @router.get("/evidence/{item_id}/transfer", response_class=HTMLResponse)
    async def transfer_form(
        item_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(ui.page("custody.transfer"))],
    ) -> HTMLResponse:
        try:
            item = await custody.read_item(fx, principal, item_id, request=request)
        except ItemNotFound:
            return render(request, "forensics_missing.html", status_code=404)
        return render(
            request, "forensics_transfer.html", item=item, kinds=MOVE_KINDS, form={}, error=None
        )

    @router.post("/evidence/{item_id}/transfers", response_model=None)
    async def transfer(
        item_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(ui.page("custody.transfer"))],
    ) -> Response:
        form = await read_form(request)
        try:
            body = TransferCreate(
                kind=form.get("kind", ""),  # type: ignore[arg-type]
                to_user=form.get("to_user", ""),
                purpose=form.get("purpose", ""),
                location=form.get("location", ""),
                at=parse_local(form.get("at"), "at"),
                seal_number=_opt(form.get("seal_number")),
                seal_condition=_opt(form.get("seal_condition")),  # type: ignore[arg-type]
                seal_change_reason=_opt(form.get("seal_change_reason")),
            )
            await custody.request_handover(fx, principal, item_id, body, request=request)
        except ItemNotFound:
            return render(request, "forensics_missing.html", status_code=404)
        except (DomainRuleBroken, InvalidValue, ValidationError, ConcurrentChange) as exc:
            message, status = refusal(exc)
            try:
                item = await custody.read_item(fx, principal, item_id, request=request)
            except ItemNotFound:
                return render(request, "forensics_missing.html", status_code=404)
            return render(
                request,
                "forensics_transfer.html",
                status_code=status,
                item=item,
                kinds=MOVE_KINDS,
                form=form,
                error=message,
            )
        return RedirectResponse(f"/ui/evidence/{item_id}?sent=1", status_code=303)

    # --- pending acceptances -----------------------------------------------------------------

    @router.get("/pending", response_class=HTMLResponse)
    async def pending(
        request: Request, principal: Annotated[Principal, Depends(ui.page("custody.accept"))]
    ) -> HTMLResponse:
        transfers = await custody.pending_for(fx, principal, request=request)
        return render(request, "forensics_pending.html", transfers=transfers, error=None)

    @router.post("/evidence/{item_id}/transfers/{transfer_id}/accept", response_model=None)
    async def accept(
        item_id: str,
        transfer_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(ui.page("custody.accept"))],
    ) -> Response:
        form = await read_form(request)
        try:
            body = TransferAccept(
                seal_condition=_opt(form.get("seal_condition")),  # type: ignore[arg-type]
                receipt_note=_opt(form.get("receipt_note")),
            )
            await custody.accept_handover(
                fx, principal, item_id, transfer_id, body, request=request
            )
        except (ItemNotFound, NotFound):
            return render(request, "forensics_missing.html", status_code=404)
        except (DomainRuleBroken, InvalidValue, ValidationError, ConcurrentChange) as exc:
            message, status = refusal(exc)
            transfers = await custody.pending_for(fx, principal, request=request)
            return render(
                request,
                "forensics_pending.html",
                status_code=status,
                transfers=transfers,
                error=message,
            )
        return RedirectResponse(f"/ui/evidence/{item_id}?accepted=1", status_code=303)

    @router.post("/evidence/{item_id}/transfers/{transfer_id}/cancel", response_model=None)
    async def cancel(
        item_id: str,
        transfer_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(ui.page("custody.transfer"))],
    ) -> Response:
        form = await read_form(request)
        try:
            body = TransferCancel(reason=_opt(form.get("reason")))
            await custody.cancel_handover(
                fx, principal, item_id, transfer_id, body, request=request
            )
        except (ItemNotFound, NotFound):
            return render(request, "forensics_missing.html", status_code=404)
        except (DomainRuleBroken, InvalidValue, ValidationError, ConcurrentChange) as exc:
            message, status = refusal(exc)
            transfers = await custody.pending_for(fx, principal, request=request)
            return render(
                request,
                "forensics_pending.html",
                status_code=status,
                transfers=transfers,
                error=message,
            )
        return RedirectResponse(f"/ui/evidence/{item_id}", status_code=303)

    # --- history and report ------------------------------------------------------------------

    @router.get("/evidence/{item_id}", response_class=HTMLResponse)
    async def history(
        item_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(ui.page("custody.read"))],
    ) -> HTMLResponse:
        try:
            found = await custody.custody_history(fx, principal, item_id, request=request)
        except ItemNotFound:
            return render(request, "forensics_missing.html", status_code=404)
        return render(
            request,
            "forensics_history.html",
            item=found.item,
            events=found.events,
            transfers=found.transfers,
            breaks=found.breaks,
            can_transfer=PERMISSIONS.permits(principal, "custody.transfer")
            and found.item.custodian == principal.user,
            can_report=PERMISSIONS.permits(principal, "custody.report"),
            sent=request.query_params.get("sent") == "1",
            accepted=request.query_params.get("accepted") == "1",
        )

    @router.get("/evidence/{item_id}/custody-report.pdf", response_model=None)
    async def report(
        item_id: str,
        request: Request,
        principal: Annotated[Principal, Depends(ui.page("custody.report"))],
    ) -> Response:
        try:
            pdf = await custody.custody_report(fx, principal, item_id, request=request)
        except ItemNotFound:
            return render(request, "forensics_missing.html", status_code=404)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="custody-{item_id}.pdf"',
                "Cache-Control": "no-store",
            },
        )

    return ForensicsUI(ui), router


class ForensicsUI:
    """The shared :class:`WebUI`, plus this service's own static files (label printing)."""

    def __init__(self, ui: WebUI) -> None:
        self.ui = ui

    def install(self, app: Any, pages: APIRouter) -> None:
        app.mount(
            "/ui/forensics-static",
            StaticFiles(directory=HERE / "static"),
            name="forensics-static",
        )
        self.ui.install(app, pages)
        app.add_middleware(SameOriginReferrer)


class SameOriginReferrer:
    """``Referrer-Policy: same-origin`` on the pages, where the shared headers say no-referrer.

    Under ``no-referrer`` a browser sends ``Origin: null`` with a form post even to its own
    origin (Fetch: the origin is serialised as null under that policy), and the shared page
    guard refuses any Origin that is not this host's: no form could ever be posted. With
    ``same-origin`` the pages' own posts carry their real Origin, and still no referrer leaves
    for another site. (Page URLs carry ids only, never a name.) Added inside the shared
    security headers, which only set the header where it is missing.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/ui"):
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Referrer-Policy", "same-origin")
            await send(message)

        await self.app(scope, receive, send_with_policy)
