"""Handlers of the evidence register and the chain of custody: one function per command.

Every write is one transaction that starts by taking the custody lock
(:func:`~cpu_forensics.adapters.ledger_store.lock_ledger`), then loads and checks the item
(:mod:`.access`), lets the domain decide, and writes in the same transaction: the item's new
state, the transfer or custody record, the ledger leaf and a new signed tree head, the outbox
events (pseudonymous ids and codes only) and the audit row. A refusal rolls all of it back and
is audited as ``denied`` in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_forensics.adapters.ledger_store import Appended, LedgerCorrupt, latest_head, lock_ledger
from cpu_forensics.adapters.public import (
    EvidenceCreate,
    TransferAccept,
    TransferCancel,
    TransferCreate,
    b64,
)
from cpu_forensics.adapters.repository import EvidenceRepository, StaleRecord
from cpu_forensics.adapters.signing import SignedHead
from cpu_forensics.domain.custody import (
    DISPOSAL_KINDS,
    ChainBreak,
    CustodyEvent,
    CustodyTransfer,
    accept_transfer,
    cancel_transfer,
    find_chain_breaks,
    flag_stale_transfers,
    register_evidence,
    request_transfer,
)
from cpu_forensics.domain.evidence import DigitalHashes, EvidenceItem
from cpu_forensics.domain.rules import CustodyRule, DomainRuleBroken, InvalidValue
from cpu_forensics.service_layer.access import (
    ItemNotFound,
    NotFound,
    audit,
    audit_denied,
    can_see_item,
    sees_every_exhibit,
    visible_item,
)
from cpu_forensics.service_layer.context import Forensics
from cpu_forensics.service_layer.report import ReportData, checkpoint_ok, prove_steps, render
from cpu_shared.contracts import publish
from cpu_shared.contracts.base import EventData
from cpu_shared.contracts.forensics import (
    EvidenceCustodyTransferred,
    EvidenceDisposed,
    EvidenceRegistered,
    LedgerTreeHeadSigned,
)
from cpu_shared.logging import get_logger
from cpu_shared.security.auth import Principal

log = get_logger(__name__)
SOURCE = "forensics"

# Actions (also the permission table's names).
REGISTER = "evidence.register"
READ = "evidence.read"
TRANSFER = "custody.transfer"
ACCEPT = "custody.accept"
CUSTODY_READ = "custody.read"
FLAGGED_READ = "custody.flagged"


class ConcurrentChange(Exception):
    """Someone else changed the record between read and write (409, retry)."""


def correlation_id() -> str:
    from asgi_correlation_id import correlation_id as http_correlation_id

    from cpu_shared.logging import correlation_id as message_correlation_id

    return http_correlation_id.get() or message_correlation_id.get() or uuid.uuid4().hex


@contextlib.asynccontextmanager
async def refusals(
    fx: Forensics,
    principal: Principal,
    *,
    action: str,
    record_id: str | None,
    request: Request | None,
    record_type: str = "evidence_item",
) -> AsyncIterator[None]:
    """Audit a refused command or read (``denied``) and count it, then let the error out."""
    try:
        yield
    except (DomainRuleBroken, InvalidValue, ItemNotFound, NotFound, StaleRecord) as exc:
        if isinstance(exc, DomainRuleBroken):
            fx.metrics.refusals.labels(exc.rule).inc()
        await audit_denied(
            fx,
            principal,
            action=action,
            record_id=record_id,
            request=request,
            record_type=record_type,
        )
        if isinstance(exc, StaleRecord):
            raise ConcurrentChange(str(exc)) from None
        raise


# --- publishing ---------------------------------------------------------------------------------


async def publish_item_event(
    fx: Forensics, session: AsyncSession, repo: EvidenceRepository, item_id: str, data: EventData
) -> None:
    """An event about an item: keyed by its pseudonym, versioned per item."""
    publish(
        session,
        data,
        source=SOURCE,
        aggregate_id=fx.item_pseudonym(item_id),
        aggregate_version=await repo.next_event_version(item_id),
        correlation_id=correlation_id(),
    )


def publish_tree_head(fx: Forensics, session: AsyncSession, head: SignedHead) -> None:
    """``ledger.tree_head_signed``: so other parties hold every head the log signed."""
    publish(
        session,
        LedgerTreeHeadSigned(
            tree_size=head.tree_size,
            root_hash=b64(head.root_hash),
            timestamp=head.timestamp,
            checkpoint=head.checkpoint,
        ),
        source=SOURCE,
        aggregate_id=fx.settings.ledger_origin,
        aggregate_version=head.tree_size,
        correlation_id=correlation_id(),
    )


async def record_step(
    fx: Forensics,
    session: AsyncSession,
    repo: EvidenceRepository,
    state: object,
    item: EvidenceItem,
    event: CustodyEvent,
    *,
    now: datetime,
) -> Appended:
    """The custody record, its ledger leaf and signed head, and their events."""
    appended = await fx.appender.append(session, state, event, now=now)  # type: ignore[arg-type]
    await repo.add_event(event, appended.ledger_index)
    case = fx.case_pseudonym(item.case_id)
    if event.sequence > 0:
        await publish_item_event(
            fx,
            session,
            repo,
            item.id,
            EvidenceCustodyTransferred(
                item_id=fx.item_pseudonym(item.id),
                case_id=case,
                kind=event.kind.value,  # type: ignore[arg-type]
                at=event.at,
                ledger_index=appended.ledger_index,
            ),
        )
    if event.kind in DISPOSAL_KINDS:
        await publish_item_event(
            fx,
            session,
            repo,
            item.id,
            EvidenceDisposed(
                item_id=fx.item_pseudonym(item.id),
                case_id=case,
                kind=event.kind.value,  # type: ignore[arg-type]
                at=event.at,
            ),
        )
    publish_tree_head(fx, session, appended.head)
    fx.metrics.custody_events.labels(event.kind.value).inc()
    fx.metrics.ledger_size.set(appended.head.tree_size)
    return appended


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    item: EvidenceItem
    event: CustodyEvent
    ledger_index: int


async def register(
    fx: Forensics, principal: Principal, body: EvidenceCreate, *, request: Request | None
) -> Registered:
    """A new item held by the registering user, its chain opened by the ``registered`` step."""
    item_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    started = time.perf_counter()
    async with refusals(fx, principal, action=REGISTER, record_id=item_id, request=request):
        async with fx.runtime.transaction() as session:
            now = fx.now()
            state = await lock_ledger(session, now=now)
            repo = fx.repository(session)
            parent = None
            if body.parent_id is not None:
                parent = await repo.get_item(body.parent_id)
                if parent is None or not await can_see_item(fx, repo, principal, parent):
                    raise InvalidValue("parent_id", "no evidence item with this id")
            hashes = (
                DigitalHashes(sha256=body.hashes.sha256, md5=body.hashes.md5, sha1=body.hashes.sha1)
                if body.hashes is not None
                else None
            )
            item, event = register_evidence(
                item_id=item_id,
                case_id=body.case_id,
                type=body.type,
                description=body.description,
                collected_by=body.collected_by or principal.user,
                collected_at=body.collected_at,
                collected_location=body.collected_location,
                seal_number=body.seal_number,
                seal_condition=body.seal_condition,
                storage_location=body.storage_location,
                registered_by=principal.user,
                registered_at=now,
                event_id=event_id,
                parent=parent,
                hashes=hashes,
                acquisition_tool=body.acquisition_tool,
            )
            await repo.add_item(item, now=now)
            appended = await record_step(fx, session, repo, state, item, event, now=now)
            await publish_item_event(
                fx,
                session,
                repo,
                item.id,
                EvidenceRegistered(
                    item_id=fx.item_pseudonym(item.id),
                    case_id=fx.case_pseudonym(item.case_id),
                    item_type=item.type.value,  # type: ignore[arg-type]
                    parent_item_id=fx.item_pseudonym(parent.id) if parent else None,
                    collected_at=item.collected_at,
                    registered_at=item.registered_at,
                ),
            )
            audit(session, principal, action=REGISTER, item_id=item.id, request=request)
    fx.metrics.append_seconds.observe(time.perf_counter() - started)
    log.info("evidence registered", item_id=item.id, ledger_index=appended.ledger_index)
    return Registered(item, event, appended.ledger_index)


async def request_handover(
    fx: Forensics,
    principal: Principal,
    item_id: str,
    body: TransferCreate,
    *,
    request: Request | None,
) -> tuple[EvidenceItem, CustodyTransfer]:
    """The holder hands the item over; it stays flagged until the receiver accepts."""
    async with refusals(fx, principal, action=TRANSFER, record_id=item_id, request=request):
        async with fx.runtime.transaction() as session:
            now = fx.now()
            await lock_ledger(session, now=now)
            repo = fx.repository(session)
            item = await visible_item(
                fx, repo, principal, item_id, action=TRANSFER, request=request
            )
            transfer = request_transfer(
                item,
                transfer_id=str(uuid.uuid4()),
                kind=body.kind,
                from_user=principal.user,
                to_user=body.to_user,
                purpose=body.purpose,
                location=body.location,
                at=body.at or now,
                recorded_at=now,
                seal_number=body.seal_number,
                seal_condition=body.seal_condition,
                seal_change_reason=body.seal_change_reason,
            )
            await repo.add_transfer(transfer)
            await repo.save_item(item, now=now)
            audit(session, principal, action=TRANSFER, item_id=item.id, request=request)
    log.info("custody transfer requested", item_id=item.id, transfer_id=transfer.transfer_id)
    return item, transfer


@dataclass(frozen=True)
class Accepted:
    item: EvidenceItem
    transfer: CustodyTransfer
    event: CustodyEvent
    ledger_index: int


async def accept_handover(
    fx: Forensics,
    principal: Principal,
    item_id: str,
    transfer_id: str,
    body: TransferAccept,
    *,
    request: Request | None,
) -> Accepted:
    """The named receiver takes custody: the step is recorded and appended to the ledger."""
    started = time.perf_counter()
    async with refusals(fx, principal, action=ACCEPT, record_id=item_id, request=request):
        async with fx.runtime.transaction() as session:
            now = fx.now()
            state = await lock_ledger(session, now=now)
            repo = fx.repository(session)
            item = await visible_item(fx, repo, principal, item_id, action=ACCEPT, request=request)
            if await repo.transfer_item_id(transfer_id) != item.id:
                raise NotFound("transfer")
            accepted, event = accept_transfer(
                item,
                transfer_id,
                by_user=principal.user,
                at=body.at or now,
                event_id=str(uuid.uuid4()),
                recorded_at=now,
                seal_condition=body.seal_condition,
                receipt_note=body.receipt_note,
            )
            await repo.close_transfer(accepted)
            await repo.save_item(item, now=now)
            appended = await record_step(fx, session, repo, state, item, event, now=now)
            audit(session, principal, action=ACCEPT, item_id=item.id, request=request)
    fx.metrics.append_seconds.observe(time.perf_counter() - started)
    log.info(
        "custody transferred",
        item_id=item.id,
        kind=event.kind.value,
        ledger_index=appended.ledger_index,
    )
    return Accepted(item, accepted, event, appended.ledger_index)


async def cancel_handover(
    fx: Forensics,
    principal: Principal,
    item_id: str,
    transfer_id: str,
    body: TransferCancel,
    *,
    request: Request | None,
) -> tuple[EvidenceItem, CustodyTransfer]:
    """The giver withdraws an open transfer, or the receiver refuses it."""
    async with refusals(fx, principal, action=TRANSFER, record_id=item_id, request=request):
        async with fx.runtime.transaction() as session:
            now = fx.now()
            await lock_ledger(session, now=now)
            repo = fx.repository(session)
            item = await visible_item(
                fx, repo, principal, item_id, action=TRANSFER, request=request
            )
            if await repo.transfer_item_id(transfer_id) != item.id:
                raise NotFound("transfer")
            closed = cancel_transfer(
                item, transfer_id, by_user=principal.user, at=now, reason=body.reason
            )
            await repo.close_transfer(closed)
            await repo.save_item(item, now=now)
            audit(session, principal, action=TRANSFER, item_id=item.id, request=request)
    return item, closed


# --- reads --------------------------------------------------------------------------------------


async def read_item(
    fx: Forensics, principal: Principal, item_id: str, *, request: Request | None
) -> EvidenceItem:
    async with refusals(fx, principal, action=READ, record_id=item_id, request=request):
        async with fx.runtime.transaction() as session:
            repo = fx.repository(session)
            item = await visible_item(fx, repo, principal, item_id, action=READ, request=request)
            audit(session, principal, action=READ, item_id=item.id, request=request)
    return item


@dataclass(frozen=True)
class CustodyHistory:
    item: EvidenceItem
    events: list[tuple[CustodyEvent, int]]
    transfers: list[CustodyTransfer]
    breaks: list[ChainBreak]


async def custody_history(
    fx: Forensics,
    principal: Principal,
    item_id: str,
    *,
    request: Request | None,
    action: str = CUSTODY_READ,
) -> CustodyHistory:
    """Every step of the item's chain, its transfers (open and closed), and any break the
    stored chain shows when replayed through the custody rules, including an item row that
    no longer agrees with its chain (shown here, so a supervisor can see it; never acted on)."""
    async with refusals(fx, principal, action=action, record_id=item_id, request=request):
        async with fx.runtime.transaction() as session:
            repo = fx.repository(session)
            item = await visible_item(
                fx, repo, principal, item_id, action=action, request=request, check_chain=False
            )
            events = await repo.events_of(item.id)
            transfers = await repo.transfers_of(item.id)
            audit(session, principal, action=action, item_id=item.id, request=request)
    breaks = find_chain_breaks([event for event, _index in events])
    if events:
        last, _index = events[-1]
        if (last.to_user, last.sequence) != (item.custodian, item.last_sequence):
            breaks.append(
                ChainBreak(
                    len(events),
                    last.event_id,
                    CustodyRule.CUSTODY_GAP,
                    f"the item's record says {item.custodian} holds it after step "
                    f"{item.last_sequence}; its chain ends with {last.to_user} at step "
                    f"{last.sequence}",
                )
            )
    return CustodyHistory(item, events, transfers, breaks)


async def pending_for(
    fx: Forensics, principal: Principal, *, request: Request | None
) -> list[CustodyTransfer]:
    """Transfers waiting for this person's acceptance (each listed item is audited)."""
    async with fx.runtime.transaction() as session:
        transfers = await fx.repository(session).pending_for(principal.user)
        for transfer in transfers:
            audit(
                session, principal, action=CUSTODY_READ, item_id=transfer.item_id, request=request
            )
    return transfers


async def flagged(
    fx: Forensics, principal: Principal, *, request: Request | None
) -> list[CustodyTransfer]:
    """Open transfers nobody accepted within the configured hours, oldest first: a handover
    that stays unanswered is a gap in the making, so it is shown to supervisors and the
    Forensic Science Team (anyone else: only the ones they are a party to)."""
    async with fx.runtime.transaction() as session:
        repo = fx.repository(session)
        stale = flag_stale_transfers(
            await repo.pending_transfers(),
            now=fx.now(),
            older_than=timedelta(hours=fx.settings.stale_transfer_hours),
        )
        if not sees_every_exhibit(principal):
            stale = [t for t in stale if principal.user in (t.from_user, t.to_user)]
        for transfer in stale:
            audit(
                session, principal, action=FLAGGED_READ, item_id=transfer.item_id, request=request
            )
    return stale


async def items_held(
    fx: Forensics, principal: Principal, *, request: Request | None
) -> list[dict[str, str]]:
    """Ids, types and seals of what this person holds (for their own pages; no text)."""
    async with fx.runtime.transaction() as session:
        rows = await fx.repository(session).items_held_by(principal.user)
        for row in rows:
            audit(session, principal, action=READ, item_id=row["id"], request=request)
    return [dict(r) for r in rows]


REPORT = "custody.report"


async def custody_report(
    fx: Forensics, principal: Principal, item_id: str, *, request: Request | None
) -> bytes:
    """The chain-of-custody PDF of one item, with the ledger proof of every step."""
    async with refusals(fx, principal, action=REPORT, record_id=item_id, request=request):
        async with fx.runtime.transaction() as session:
            repo = fx.repository(session)
            item = await visible_item(fx, repo, principal, item_id, action=REPORT, request=request)
            events = await repo.events_of(item.id)
            transfers = await repo.transfers_of(item.id)
            analyses = await repo.analyses_of(item.id)
            head = await latest_head(session)
            if head is None:
                raise LedgerCorrupt("an item exists but the ledger has no signed head")
            tree = await fx.hash_cache.tree(session, head.tree_size)
            audit(session, principal, action=REPORT, item_id=item.id, request=request)
    signer = fx.signer
    steps = prove_steps(
        events, tree.leaf_hash, tree.inclusion_proof, head.tree_size, head.root_hash
    )
    data = ReportData(
        item=item,
        steps=steps,
        transfers=transfers,
        analyses=analyses,
        tree_size=head.tree_size,
        root_hash=head.root_hash,
        checkpoint=head.checkpoint,
        checkpoint_verified=checkpoint_ok(
            head.checkpoint, signer.verifier_key, signer.origin, head.tree_size, head.root_hash
        ),
        verifier_key=signer.verifier_key,
        generated_by=principal.user,
        generated_at=fx.now(),
    )
    return await asyncio.to_thread(render, data, fx.settings.report_font_dirs)
