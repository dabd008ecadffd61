"""The evidence repository: the only code that reads or writes items, transfers, custody
records and analyses (the ledger's own tables are :mod:`.ledger_store`'s).

Every write is an explicit statement in the caller's transaction; an item is saved only if its
row still has the version it was loaded with, so a change that raced past the custody lock (a
second process with another lock, a hand edit) is refused rather than overwritten.

Loading an item also checks it against its chain: the custodian and last sequence on the item
row must be those of its newest custody record. The row is a cache of the chain, and a cache
that disagrees with the chain is never acted on (:class:`CustodyRecordInconsistent`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_forensics.adapters import records
from cpu_forensics.adapters.records import Protection, utc
from cpu_forensics.adapters.tables import (
    AnalysisRow,
    CustodyEventRow,
    CustodyTransferRow,
    EvidenceItemRow,
    KnownCaseRow,
)
from cpu_forensics.domain.analysis import LabAnalysis
from cpu_forensics.domain.custody import CustodyEvent, CustodyKind, CustodyTransfer
from cpu_forensics.domain.evidence import EvidenceItem
from cpu_forensics.domain.rules import CustodyRule, CustodyRuleBroken
from cpu_shared.logging import get_logger

log = get_logger(__name__)

ITEM = EvidenceItemRow.__table__  # type: ignore[attr-defined]
TRANSFER = CustodyTransferRow.__table__  # type: ignore[attr-defined]
EVENT = CustodyEventRow.__table__  # type: ignore[attr-defined]
ANALYSIS = AnalysisRow.__table__  # type: ignore[attr-defined]
KNOWN_CASE = KnownCaseRow.__table__  # type: ignore[attr-defined]


class StaleRecord(Exception):
    """The row changed since it was read (its version moved on)."""


class CustodyRecordInconsistent(CustodyRuleBroken):
    """An item's row disagrees with its chain of custody: nothing is done to it (409)."""

    def __init__(self, item_id: str) -> None:
        super().__init__(
            CustodyRule.CUSTODY_GAP,
            f"item {item_id}: its recorded custodian does not match its chain of custody; "
            "nothing was changed (run `cpu ledger verify`)",
        )


class EvidenceRepository:
    def __init__(self, session: AsyncSession, protection: Protection) -> None:
        self.session = session
        self.p = protection
        self._loaded_versions: dict[str, int] = {}

    # --- items --------------------------------------------------------------------------------

    async def item_row(self, item_id: str) -> sa.RowMapping | None:
        result = await self.session.execute(sa.select(ITEM).where(ITEM.c.id == item_id))
        return result.mappings().first()

    async def get_item(self, item_id: str, *, check_chain: bool = True) -> EvidenceItem | None:
        """The item with its open transfer, checked against its newest custody record
        (``check_chain=False`` only to *show* an inconsistent item, never to change it)."""
        row = await self.item_row(item_id)
        if row is None:
            return None
        if not check_chain:
            return await self._build_item(row)
        last = (
            await self.session.execute(
                sa.select(EVENT.c.sequence, EVENT.c.to_user, EVENT.c.kind)
                .where(EVENT.c.item_id == item_id)
                .order_by(EVENT.c.sequence.desc())
                .limit(1)
            )
        ).first()
        if last is None or (last.sequence, last.to_user) != (
            row["last_sequence"],
            row["custodian"],
        ):
            log.error("an item's row disagrees with its chain of custody", item_id=item_id)
            raise CustodyRecordInconsistent(item_id)
        return await self._build_item(row)

    async def _build_item(self, row: sa.RowMapping) -> EvidenceItem:
        item_id = row["id"]
        pending = None
        if row["status"] == "transfer_pending":
            pending_row = (
                (
                    await self.session.execute(
                        sa.select(TRANSFER).where(
                            TRANSFER.c.item_id == item_id, TRANSFER.c.status == "pending"
                        )
                    )
                )
                .mappings()
                .first()
            )
            if pending_row is None:
                log.error("an item awaits a transfer that is not open", item_id=item_id)
                raise CustodyRecordInconsistent(item_id)
            pending = records.transfer_from_row(pending_row, self.p)
        item = records.item_from_row(row, self.p, pending)
        self._loaded_versions[item.id] = item.version
        return item

    async def add_item(self, item: EvidenceItem, *, now: datetime) -> None:
        await self.session.execute(
            sa.insert(ITEM).values(records.item_values(item, self.p, now=now))
        )
        self._loaded_versions[item.id] = item.version

    async def save_item(self, item: EvidenceItem, *, now: datetime) -> None:
        """Write the item's custody state; refused if another change got there first."""
        loaded = self._loaded_versions.get(item.id)
        if loaded is None:
            raise RuntimeError("save_item needs an item loaded by this repository")
        result = await self.session.execute(
            sa.update(ITEM)
            .where(ITEM.c.id == item.id, ITEM.c.version == loaded)
            .values(**records.item_state_values(item, self.p), updated_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleRecord(item.id)
        self._loaded_versions[item.id] = item.version

    async def next_event_version(self, item_id: str) -> int:
        """The aggregate version of the next event published about the item (1, 2, ...)."""
        result = await self.session.execute(
            sa.update(ITEM)
            .where(ITEM.c.id == item_id)
            .values(event_seq=ITEM.c.event_seq + 1)
            .returning(ITEM.c.event_seq)
        )
        return int(result.scalar_one())

    async def items_held_by(self, user: str, *, limit: int = 200) -> list[sa.RowMapping]:
        """Ids, types, statuses and seals of what ``user`` holds (no text to decrypt)."""
        result = await self.session.execute(
            sa.select(ITEM.c.id, ITEM.c.case_id, ITEM.c.type, ITEM.c.status, ITEM.c.seal_number)
            .where(ITEM.c.custodian == user, ITEM.c.status != "disposed")
            .order_by(ITEM.c.registered_at.desc())
            .limit(limit)
        )
        return list(result.mappings().all())

    # --- transfers ----------------------------------------------------------------------------

    async def add_transfer(self, transfer: CustodyTransfer) -> None:
        await self.session.execute(
            sa.insert(TRANSFER).values(records.transfer_values(transfer, self.p))
        )

    async def close_transfer(self, transfer: CustodyTransfer) -> None:
        result = await self.session.execute(
            sa.update(TRANSFER)
            .where(TRANSFER.c.id == transfer.transfer_id, TRANSFER.c.status == "pending")
            .values(records.transfer_close_values(transfer, self.p))
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleRecord(transfer.transfer_id)

    async def transfer_item_id(self, transfer_id: str) -> str | None:
        result = await self.session.execute(
            sa.select(TRANSFER.c.item_id).where(TRANSFER.c.id == transfer_id)
        )
        return result.scalar_one_or_none()

    async def transfers_of(self, item_id: str) -> list[CustodyTransfer]:
        result = await self.session.execute(
            sa.select(TRANSFER)
            .where(TRANSFER.c.item_id == item_id)
            .order_by(TRANSFER.c.recorded_at)
        )
        return [records.transfer_from_row(r, self.p) for r in result.mappings().all()]

    async def pending_for(self, user: str, *, limit: int = 200) -> list[CustodyTransfer]:
        """Open transfers addressed to ``user``, oldest first."""
        result = await self.session.execute(
            sa.select(TRANSFER)
            .where(TRANSFER.c.to_user == user, TRANSFER.c.status == "pending")
            .order_by(TRANSFER.c.recorded_at)
            .limit(limit)
        )
        return [records.transfer_from_row(r, self.p) for r in result.mappings().all()]

    async def pending_transfers(self, *, limit: int = 1000) -> list[CustodyTransfer]:
        result = await self.session.execute(
            sa.select(TRANSFER)
            .where(TRANSFER.c.status == "pending")
            .order_by(TRANSFER.c.recorded_at)
            .limit(limit)
        )
        return [records.transfer_from_row(r, self.p) for r in result.mappings().all()]

    # --- custody events -----------------------------------------------------------------------

    async def add_event(self, event: CustodyEvent, ledger_index: int) -> None:
        await self.session.execute(
            sa.insert(EVENT).values(records.event_values(event, ledger_index, self.p))
        )

    async def events_of(self, item_id: str) -> list[tuple[CustodyEvent, int]]:
        """The item's chain, in sequence order, each event with its ledger index."""
        item = await self.item_row(item_id)
        if item is None:
            return []
        evidence = records.registered_evidence(item, self.p)
        result = await self.session.execute(
            sa.select(EVENT).where(EVENT.c.item_id == item_id).order_by(EVENT.c.sequence)
        )
        out = []
        for row in result.mappings().all():
            registered = row["kind"] == CustodyKind.REGISTERED.value
            event = records.event_from_row(row, self.p, evidence if registered else None)
            out.append((event, int(row["ledger_index"])))
        return out

    # --- analyses -----------------------------------------------------------------------------

    async def add_analysis(self, analysis: LabAnalysis) -> None:
        await self.session.execute(
            sa.insert(ANALYSIS).values(records.analysis_values(analysis, self.p))
        )
        self._loaded_versions[analysis.id] = analysis.version

    async def get_analysis(self, analysis_id: str) -> LabAnalysis | None:
        row = (
            (await self.session.execute(sa.select(ANALYSIS).where(ANALYSIS.c.id == analysis_id)))
            .mappings()
            .first()
        )
        if row is None:
            return None
        analysis = records.analysis_from_row(row, self.p)
        self._loaded_versions[analysis.id] = analysis.version
        return analysis

    async def save_analysis(self, analysis: LabAnalysis) -> None:
        loaded = self._loaded_versions.get(analysis.id)
        if loaded is None:
            raise RuntimeError("save_analysis needs an analysis loaded by this repository")
        values = records.analysis_values(analysis, self.p)
        for fixed in ("id", "item_id", "case_id", "type", "requested_by", "requested_at"):
            values.pop(fixed)
        result = await self.session.execute(
            sa.update(ANALYSIS)
            .where(ANALYSIS.c.id == analysis.id, ANALYSIS.c.version == loaded)
            .values(values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleRecord(analysis.id)
        self._loaded_versions[analysis.id] = analysis.version

    async def analyses_of(self, item_id: str) -> list[LabAnalysis]:
        result = await self.session.execute(
            sa.select(ANALYSIS)
            .where(ANALYSIS.c.item_id == item_id)
            .order_by(ANALYSIS.c.requested_at)
        )
        return [records.analysis_from_row(r, self.p) for r in result.mappings().all()]

    async def analysts_of(self, item_id: str) -> set[str]:
        result = await self.session.execute(
            sa.select(ANALYSIS.c.analyst).where(
                ANALYSIS.c.item_id == item_id, ANALYSIS.c.analyst.is_not(None)
            )
        )
        return {a for (a,) in result.all()}

    # --- cases (from casework's events) -------------------------------------------------------

    async def known_case(self, case_pseudonym: str) -> tuple[frozenset[str], str | None] | None:
        row = (
            await self.session.execute(
                sa.select(KNOWN_CASE.c.teams, KNOWN_CASE.c.province_code).where(
                    KNOWN_CASE.c.case_pseudonym == case_pseudonym
                )
            )
        ).first()
        if row is None:
            return None
        return frozenset(t for t in row.teams.split(",") if t), row.province_code

    async def remember_case(
        self,
        case_pseudonym: str,
        *,
        teams: Sequence[str],
        province_code: str | None,
        now: datetime,
        replace_teams: bool,
    ) -> None:
        """Record (or widen) what casework said about a case: its teams and province."""
        known = await self.known_case(case_pseudonym)
        merged = set(teams) if replace_teams or known is None else set(known[0]) | set(teams)
        values = {
            "teams": ",".join(sorted(merged)),
            "province_code": province_code,
            "updated_at": now,
        }
        if known is None:
            await self.session.execute(
                sa.insert(KNOWN_CASE).values(case_pseudonym=case_pseudonym, **values)
            )
        else:
            await self.session.execute(
                sa.update(KNOWN_CASE)
                .where(KNOWN_CASE.c.case_pseudonym == case_pseudonym)
                .values(**values)
            )


__all__ = ["CustodyRecordInconsistent", "EvidenceRepository", "StaleRecord", "utc"]
