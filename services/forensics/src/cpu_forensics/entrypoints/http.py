"""HTTP routes of the forensics service under ``/api/v1`` (CONTRACT.md sections 5 and 7).

Thin: each route checks its action (``permissions.py``), hands the request to one handler of
``service_layer`` and shapes the answer. Errors are ``{"detail": ...}``:

- 409: a custody or analysis rule refused the change:
  ``{"detail": {"rule": "<the rule's name>", "message": "..."}}`` (rule names are
  :class:`~cpu_forensics.domain.rules.CustodyRule` and ``AnalysisRule`` values, plus
  ``concurrent_change`` when two writes raced);
- 422: ``{"detail": [{"loc", "msg", "type"}]}`` naming the field; the refused value is never
  echoed (it may be a description of a child's clothing);
- 404: no such item, or one the caller may not see (the same answer, so ids cannot be probed);
- 415 for anything but JSON, 413 for a body over 64 KB: this service takes hashes and
  locations, never a file, so an upload is refused before it is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from cpu_forensics.adapters.ledger_store import LedgerCorrupt
from cpu_forensics.adapters.public import (
    AcceptedPublic,
    AnalysesPublic,
    AnalysisCreate,
    AnalysisDecision,
    AnalysisExamination,
    AnalysisPublic,
    ChainBreakPublic,
    ConsistencyProofPublic,
    CustodyEventPublic,
    CustodyPublic,
    EntriesPublic,
    EntryPublic,
    EvidenceCreate,
    InclusionProofPublic,
    ItemPublic,
    LedgerProblemPublic,
    PendingPublic,
    PublicKeyPublic,
    RegisteredPublic,
    TransferAccept,
    TransferCancel,
    TransferCreate,
    TransferPublic,
    TreeHeadPublic,
    VerificationPublic,
    b64,
)
from cpu_forensics.domain.rules import DomainRuleBroken, InvalidValue
from cpu_forensics.permissions import PERMISSIONS
from cpu_forensics.service_layer import analyses, custody, ledger
from cpu_forensics.service_layer.access import ItemNotFound, NotFound
from cpu_forensics.service_layer.context import Forensics
from cpu_forensics.service_layer.custody import ConcurrentChange
from cpu_forensics.service_layer.ledger import LedgerEmpty, ProofOutOfRange, Verifier
from cpu_forensics.service_layer.verification import StoreVerification
from cpu_shared.logging import get_logger
from cpu_shared.security.auth import Principal
from cpu_shared.security.crypto import CryptoError

log = get_logger(__name__)
router = APIRouter(tags=["forensics"])

ItemId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
SubId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]

REFUSED = {"description": "A custody or analysis rule refused it: detail.rule names the rule"}
NOT_FOUND = {"description": "No such item (or not one you may see)"}


def forensics_of(request: Request) -> Forensics:
    return request.app.state.forensics


def verifier_of(request: Request) -> Verifier:
    return request.app.state.ledger_verifier


Fx = Annotated[Forensics, Depends(forensics_of)]


def allowed(action: str) -> Any:
    return Depends(PERMISSIONS.require(action))


# --- evidence and custody -----------------------------------------------------------------------


@router.post(
    "/evidence",
    status_code=201,
    response_model=RegisteredPublic,
    responses={409: REFUSED},
    summary="Register an evidence item (the caller becomes its first custodian)",
)
async def register_item(
    body: EvidenceCreate,
    request: Request,
    response: Response,
    fx: Fx,
    principal: Annotated[Principal, allowed(custody.REGISTER)],
) -> RegisteredPublic:
    done = await custody.register(fx, principal, body, request=request)
    response.headers["Location"] = f"/api/v1/evidence/{done.item.id}"
    return RegisteredPublic(
        **ItemPublic.of(done.item).model_dump(),
        registration=CustodyEventPublic.of(done.event, done.ledger_index),
    )


@router.get("/evidence/{item_id}", response_model=ItemPublic, responses={404: NOT_FOUND})
async def get_item(
    item_id: ItemId,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(custody.READ)],
) -> ItemPublic:
    return ItemPublic.of(await custody.read_item(fx, principal, item_id, request=request))


@router.post(
    "/evidence/{item_id}/transfers",
    status_code=201,
    response_model=TransferPublic,
    responses={404: NOT_FOUND, 409: REFUSED},
    summary="Hand the item over; custody passes when the receiver accepts",
)
async def request_transfer(
    item_id: ItemId,
    body: TransferCreate,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(custody.TRANSFER)],
) -> TransferPublic:
    _item, transfer = await custody.request_handover(fx, principal, item_id, body, request=request)
    return TransferPublic.of(transfer)


@router.post(
    "/evidence/{item_id}/transfers/{transfer_id}/accept",
    response_model=AcceptedPublic,
    responses={404: NOT_FOUND, 409: REFUSED},
    summary="The receiver accepts: the step is recorded and appended to the ledger",
)
async def accept_transfer(
    item_id: ItemId,
    transfer_id: SubId,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(custody.ACCEPT)],
    body: TransferAccept | None = None,
) -> AcceptedPublic:
    done = await custody.accept_handover(
        fx, principal, item_id, transfer_id, body or TransferAccept(), request=request
    )
    return AcceptedPublic(
        transfer=TransferPublic.of(done.transfer),
        event=CustodyEventPublic.of(done.event, done.ledger_index),
        item=ItemPublic.of(done.item),
    )


@router.post(
    "/evidence/{item_id}/transfers/{transfer_id}/cancel",
    response_model=TransferPublic,
    responses={404: NOT_FOUND, 409: REFUSED},
    summary="The giver withdraws an open transfer, or the receiver refuses it",
)
async def cancel_transfer(
    item_id: ItemId,
    transfer_id: SubId,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(custody.TRANSFER)],
    body: TransferCancel | None = None,
) -> TransferPublic:
    _item, closed = await custody.cancel_handover(
        fx, principal, item_id, transfer_id, body or TransferCancel(), request=request
    )
    return TransferPublic.of(closed)


@router.get("/evidence/{item_id}/custody", response_model=CustodyPublic, responses={404: NOT_FOUND})
async def get_custody(
    item_id: ItemId,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(custody.CUSTODY_READ)],
) -> CustodyPublic:
    history = await custody.custody_history(fx, principal, item_id, request=request)
    by_position = {pos: event.sequence for pos, (event, _i) in enumerate(history.events)}
    return CustodyPublic(
        item_id=history.item.id,
        custodian=history.item.custodian,
        status=history.item.status.value,
        pending_transfer=(
            TransferPublic.of(history.item.pending_transfer)
            if history.item.pending_transfer
            else None
        ),
        events=[CustodyEventPublic.of(e, index) for e, index in history.events],
        transfers=[TransferPublic.of(t) for t in history.transfers],
        chain_breaks=[
            ChainBreakPublic(
                sequence=by_position.get(b.position, b.position),
                event_id=b.event_id,
                rule=b.rule.value,
                message=b.message,
            )
            for b in history.breaks
        ],
    )


@router.get(
    "/evidence/{item_id}/custody-report.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}, 404: NOT_FOUND},
    summary="The chain-of-custody report (PDF) with the ledger proof of every step",
)
async def custody_report(
    item_id: ItemId,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(custody.REPORT)],
) -> Response:
    pdf = await custody.custody_report(fx, principal, item_id, request=request)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="custody-{item_id}.pdf"'},
    )


@router.get("/custody/pending", response_model=PendingPublic)
async def pending_acceptances(
    request: Request, fx: Fx, principal: Annotated[Principal, allowed(custody.CUSTODY_READ)]
) -> PendingPublic:
    """Handovers awaiting the caller's acceptance; for those allowed ``custody.flagged``, also
    every handover nobody accepted within ``FORENSICS_STALE_TRANSFER_HOURS``."""
    mine = await custody.pending_for(fx, principal, request=request)
    stale = (
        await custody.flagged(fx, principal, request=request)
        if PERMISSIONS.permits(principal, custody.FLAGGED_READ)
        else []
    )
    return PendingPublic(
        transfers=[TransferPublic.of(t) for t in mine],
        flagged=[TransferPublic.of(t) for t in stale],
    )


# --- analyses ---------------------------------------------------------------------------------


@router.post(
    "/evidence/{item_id}/analyses",
    status_code=201,
    response_model=AnalysisPublic,
    responses={404: NOT_FOUND, 409: REFUSED},
)
async def request_analysis(
    item_id: ItemId,
    body: AnalysisCreate,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(analyses.REQUEST)],
) -> AnalysisPublic:
    return AnalysisPublic.of(await analyses.request(fx, principal, item_id, body, http=request))


@router.get("/evidence/{item_id}/analyses", response_model=AnalysesPublic)
async def list_analyses(
    item_id: ItemId,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(analyses.READ)],
) -> AnalysesPublic:
    found = await analyses.list_for_item(fx, principal, item_id, http=request)
    return AnalysesPublic(analyses=[AnalysisPublic.of(a) for a in found])


@router.post(
    "/evidence/{item_id}/analyses/{analysis_id}/examination",
    response_model=AnalysisPublic,
    responses={404: NOT_FOUND, 409: REFUSED},
    summary="The assigned analyst starts the examination, or reports the result",
)
async def examine_analysis(
    item_id: ItemId,
    analysis_id: SubId,
    body: AnalysisExamination,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(analyses.PERFORM)],
) -> AnalysisPublic:
    return AnalysisPublic.of(
        await analyses.examine(fx, principal, item_id, analysis_id, body, http=request)
    )


@router.post(
    "/evidence/{item_id}/analyses/{analysis_id}/decision",
    response_model=AnalysisPublic,
    responses={404: NOT_FOUND, 409: REFUSED},
    summary="A lab lead assigns the analyst, signs the result off or sends it back, or cancels",
)
async def decide_analysis(
    item_id: ItemId,
    analysis_id: SubId,
    body: AnalysisDecision,
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(analyses.DECIDE)],
) -> AnalysisPublic:
    return AnalysisPublic.of(
        await analyses.decide(fx, principal, item_id, analysis_id, body, http=request)
    )


# --- the custody ledger (CONTRACT.md section 7) --------------------------------------------------


@router.get("/ledger/entries", response_model=EntriesPublic, tags=["ledger"])
async def ledger_entries(
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(ledger.READ)],
    start: Annotated[int, Query(ge=0, le=2**62)],
    end: Annotated[int, Query(ge=0, le=2**62)],
) -> EntriesPublic:
    """Entries ``start`` to ``end`` (exclusive); at most 1,000 per call, fewer at the end."""
    found = await ledger.entries(fx, principal, start, end, request=request)
    return EntriesPublic(
        entries=[
            EntryPublic(
                index=e.ledger_index, event_id=e.event_id, item_id=e.item_id, leaf=b64(e.leaf)
            )
            for e in found
        ]
    )


@router.get("/ledger/tree-head", response_model=TreeHeadPublic, tags=["ledger"])
async def ledger_tree_head(
    request: Request, fx: Fx, principal: Annotated[Principal, allowed(ledger.READ)]
) -> TreeHeadPublic:
    head = await ledger.tree_head(fx, principal, request=request)
    return TreeHeadPublic(
        tree_size=head.tree_size,
        root_hash=b64(head.root_hash),
        timestamp=head.timestamp,
        checkpoint=head.checkpoint,
    )


@router.get(
    "/ledger/public-key",
    response_model=PublicKeyPublic,
    tags=["ledger"],
    responses={200: {"content": {"text/plain": {}}}},
)
async def ledger_public_key(
    request: Request, fx: Fx, _principal: Annotated[Principal, allowed(ledger.READ)]
) -> Any:
    """The verifier key in signed-note form; as text with ``Accept: text/plain``."""
    key = ledger.public_key(fx)
    accept = request.headers.get("accept", "")
    if "text/plain" in accept and "application/json" not in accept:
        return PlainTextResponse(key.verifier_key + "\n")
    return PublicKeyPublic(
        public_key=key.verifier_key,
        verifier_key=key.verifier_key,
        origin=key.origin,
        key_id=key.key_id,
    )


@router.get("/ledger/proofs/inclusion", response_model=InclusionProofPublic, tags=["ledger"])
async def ledger_inclusion_proof(
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(ledger.READ)],
    index: Annotated[int, Query(ge=0, le=2**62)],
    tree_size: Annotated[int, Query(ge=1, le=2**62)],
) -> InclusionProofPublic:
    path = await ledger.inclusion_proof(fx, principal, index, tree_size, request=request)
    return InclusionProofPublic(index=index, tree_size=tree_size, path=[b64(p) for p in path])


@router.get("/ledger/proofs/consistency", response_model=ConsistencyProofPublic, tags=["ledger"])
async def ledger_consistency_proof(
    request: Request,
    fx: Fx,
    principal: Annotated[Principal, allowed(ledger.READ)],
    first: Annotated[int, Query(ge=1, le=2**62)],
    second: Annotated[int, Query(ge=1, le=2**62)],
) -> ConsistencyProofPublic:
    path = await ledger.consistency_proof(fx, principal, first, second, request=request)
    return ConsistencyProofPublic(first=first, second=second, path=[b64(p) for p in path])


def verification_public(outcome: StoreVerification) -> VerificationPublic:
    return VerificationPublic(
        ok=outcome.ok,
        tree_size=outcome.tree_size,
        root_hash=b64(outcome.root_hash),
        tree_heads_checked=outcome.tree_heads_checked,
        tree_heads_verified=outcome.tree_heads_verified,
        first_bad_index=outcome.first_bad_index,
        first_bad_event_id=outcome.first_bad_event_id,
        first_bad_exact=outcome.first_bad_exact,
        signatures=outcome.signatures,
        problems=[
            LedgerProblemPublic(
                code=p.code,
                message=p.message,
                index=p.index,
                index_end=p.index_end,
                event_id=p.event_id,
                tree_head_size=outcome.head_size(p),
            )
            for p in outcome.problems[:1000]
        ],
        summary=outcome.summary(),
    )


@router.get("/ledger/verify", response_model=VerificationPublic, tags=["ledger"])
async def ledger_verify(
    request: Request,
    fx: Fx,
    verifier: Annotated[Verifier, Depends(verifier_of)],
    principal: Annotated[Principal, allowed(ledger.VERIFY)],
    signatures: Annotated[Literal["all", "newest"], Query()] = "all",
) -> VerificationPublic:
    """Recompute every leaf from the custody records, the tree from the leaves, and check every
    signed tree head (the same check as ``cpu ledger verify``). ``ok`` is false on any failure,
    with the first bad entry named by index and event id. ``signatures=newest`` checks every
    head's root but only the newest head's signature (faster on a large log)."""
    outcome = await ledger.verify(fx, verifier, principal, signatures=signatures, request=request)
    return verification_public(outcome)


# --- errors ---------------------------------------------------------------------------------------


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors without the refused value (``input``) or its context."""
    return [
        {
            "loc": list(e.get("loc") or ()),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def unprocessable(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": field_problems(exc.errors())}, status_code=422)

    @app.exception_handler(InvalidValue)
    async def invalid_value(_request: Request, exc: InvalidValue) -> JSONResponse:
        problem = {
            "loc": ["body", *exc.field.split(".")],
            "msg": exc.message,
            "type": "value_error",
        }
        return JSONResponse({"detail": [problem]}, status_code=422)

    @app.exception_handler(ProofOutOfRange)
    async def out_of_range(_request: Request, exc: ProofOutOfRange) -> JSONResponse:
        problem = {"loc": ["query", exc.field], "msg": exc.message, "type": "value_error"}
        return JSONResponse({"detail": [problem]}, status_code=422)

    @app.exception_handler(DomainRuleBroken)
    async def refused(_request: Request, exc: DomainRuleBroken) -> JSONResponse:
        return JSONResponse({"detail": {"rule": exc.rule, "message": exc.message}}, status_code=409)

    @app.exception_handler(ConcurrentChange)
    async def raced(_request: Request, _exc: ConcurrentChange) -> JSONResponse:
        return JSONResponse(
            {
                "detail": {
                    "rule": "concurrent_change",
                    "message": "the record changed while this request was handled; reload it",
                }
            },
            status_code=409,
        )

    @app.exception_handler(ItemNotFound)
    async def no_item(_request: Request, _exc: ItemNotFound) -> JSONResponse:
        return JSONResponse({"detail": "no evidence item with this id"}, status_code=404)

    @app.exception_handler(NotFound)
    async def no_such(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": f"no {exc.what} with this id on this item"}, status_code=404)

    @app.exception_handler(LedgerEmpty)
    async def empty(_request: Request, _exc: LedgerEmpty) -> JSONResponse:
        return JSONResponse(
            {"detail": "the ledger is empty: no custody event has been recorded yet"},
            status_code=404,
        )

    @app.exception_handler(CryptoError)
    async def undecryptable(_request: Request, exc: CryptoError) -> JSONResponse:
        log.error("a stored record does not decrypt", error=type(exc).__name__)
        return JSONResponse(
            {
                "detail": "a stored record does not decrypt (changed in the store, or its key "
                "is missing); nothing was changed; run `cpu ledger verify`"
            },
            status_code=500,
        )

    @app.exception_handler(LedgerCorrupt)
    async def corrupt(_request: Request, exc: LedgerCorrupt) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the stored ledger is inconsistent ({exc}); run `cpu ledger verify`"},
            status_code=500,
        )
