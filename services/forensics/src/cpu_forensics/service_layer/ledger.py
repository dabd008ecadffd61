"""Reading the custody ledger (CONTRACT.md section 7): entries, the latest signed head, the
verifier key, inclusion and consistency proofs, and the whole-log verification.

Every read is audited (record type ``custody_ledger``): leaves repeat what items are and where
they went. Proof parameters outside the log are refused with :class:`ProofOutOfRange` (422).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request

from cpu_forensics.adapters.ledger_store import (
    MAX_ENTRIES_PER_CALL,
    LedgerEntry,
    head_at,
    latest_head,
    ledger_size,
    read_entries,
)
from cpu_forensics.adapters.signing import SignedHead
from cpu_forensics.domain.ledger import key_id
from cpu_forensics.service_layer.access import LEDGER_RECORD, audit
from cpu_forensics.service_layer.context import Forensics
from cpu_forensics.service_layer.verification import Signatures, StoreVerification, verify_store
from cpu_shared.logging import get_logger
from cpu_shared.security.auth import Principal

log = get_logger(__name__)

READ = "ledger.read"
VERIFY = "ledger.verify"


class ProofOutOfRange(ValueError):
    """A proof or range that the log cannot give (422, naming the parameter)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class LedgerEmpty(Exception):
    """No custody event has been recorded yet: there is no signed head (404)."""


async def entries(
    fx: Forensics, principal: Principal, start: int, end: int, *, request: Request | None
) -> list[LedgerEntry]:
    """Entries ``start`` to ``end`` (exclusive), at most 1,000, clipped to the log's size."""
    if start < 0:
        raise ProofOutOfRange("start", "must not be negative")
    if end < start:
        raise ProofOutOfRange("end", "must not be smaller than start")
    end = min(end, start + MAX_ENTRIES_PER_CALL)
    async with fx.runtime.transaction() as session:
        size = await ledger_size(session)
        found = await read_entries(session, fx.protection, start, min(end, size))
        audit(
            session,
            principal,
            action=READ,
            item_id=f"entries:{start}-{end}",
            request=request,
            record_type=LEDGER_RECORD,
        )
    return found


async def tree_head(fx: Forensics, principal: Principal, *, request: Request | None) -> SignedHead:
    async with fx.runtime.transaction() as session:
        head = await latest_head(session)
        audit(
            session,
            principal,
            action=READ,
            item_id="tree-head",
            request=request,
            record_type=LEDGER_RECORD,
        )
    if head is None:
        raise LedgerEmpty()
    return head


@dataclass(frozen=True)
class PublicKey:
    verifier_key: str
    origin: str
    key_id: str


def public_key(fx: Forensics) -> PublicKey:
    signer = fx.signer
    return PublicKey(
        signer.verifier_key, signer.origin, key_id(signer.origin, signer.key.public_key()).hex()
    )


async def inclusion_proof(
    fx: Forensics, principal: Principal, index: int, tree_size: int, *, request: Request | None
) -> list[bytes]:
    async with fx.runtime.transaction() as session:
        size = await ledger_size(session)
        if not 1 <= tree_size <= size:
            raise ProofOutOfRange("tree_size", f"must be from 1 to the ledger's size ({size})")
        if not 0 <= index < tree_size:
            raise ProofOutOfRange("index", f"must be from 0 to tree_size - 1 ({tree_size - 1})")
        tree = await fx.hash_cache.tree(session, tree_size)
        audit(
            session,
            principal,
            action=READ,
            item_id=f"inclusion:{index}:{tree_size}",
            request=request,
            record_type=LEDGER_RECORD,
        )
    return tree.inclusion_proof(index, tree_size)


async def consistency_proof(
    fx: Forensics, principal: Principal, first: int, second: int, *, request: Request | None
) -> list[bytes]:
    async with fx.runtime.transaction() as session:
        size = await ledger_size(session)
        if not 1 <= second <= size:
            raise ProofOutOfRange("second", f"must be from 1 to the ledger's size ({size})")
        if not 1 <= first <= second:
            raise ProofOutOfRange("first", f"must be from 1 to second ({second})")
        tree = await fx.hash_cache.tree(session, second)
        audit(
            session,
            principal,
            action=READ,
            item_id=f"consistency:{first}:{second}",
            request=request,
            record_type=LEDGER_RECORD,
        )
    return tree.consistency_proof(first, second)


async def head_of_size(fx: Forensics, tree_size: int) -> SignedHead | None:
    async with fx.runtime.sessions() as session:
        return await head_at(session, tree_size)


class Verifier:
    """Runs :func:`verify_store` in a worker thread, one run at a time per process and mode:
    callers arriving while a run is under way share its result instead of starting another
    (a verification of a large log is minutes of CPU; this keeps it from being a lever)."""

    def __init__(self, fx: Forensics) -> None:
        self.fx = fx
        self._running: dict[str, asyncio.Task[StoreVerification]] = {}

    async def run(self, signatures: Signatures = "all") -> StoreVerification:
        task = self._running.get(signatures)
        if task is None or task.done():
            task = asyncio.create_task(self._verify(signatures))
            self._running[signatures] = task
        return await asyncio.shield(task)

    async def _verify(self, signatures: Signatures) -> StoreVerification:
        fx = self.fx
        outcome = await asyncio.to_thread(
            verify_store,
            fx.settings.database_url,
            fx.protection.cipher,
            fx.signer.verifier_key,
            origin=fx.signer.origin,
            signatures=signatures,
        )
        fx.metrics.verifications.labels("ok" if outcome.ok else "failed").inc()
        if not outcome.ok:
            log.error(
                "custody ledger verification FAILED",
                first_bad_index=outcome.first_bad_index,
                first_bad_event_id=outcome.first_bad_event_id,
                problems=len(outcome.problems),
            )
        return outcome


async def verify(
    fx: Forensics,
    verifier: Verifier,
    principal: Principal,
    *,
    signatures: Signatures = "all",
    request: Request | None,
) -> StoreVerification:
    outcome = await verifier.run(signatures)
    async with fx.runtime.transaction() as session:
        audit(
            session,
            principal,
            action=VERIFY,
            item_id=f"verify:{outcome.tree_size}",
            request=request,
            record_type=LEDGER_RECORD,
        )
    return outcome
