"""The tables of the forensics store (created by migration ``forensics_0003``).

What each row may hold:

* ids (UUIDs of items, transfers, custody events, analyses; casework's case id), officers'
  user ids, codes, instants, seal numbers, hashes, the name of an acquisition tool;
* free text only as AES-GCM tokens (``*_enc`` columns), each bound to its table, column and
  row id (:func:`cpu_shared.security.crypto.field_context`): what an item is and where it was
  found, where it is kept, why it moved, what the receiver saw, a lab's method and findings.
  A ledger leaf repeats some of that text (CONTRACT.md section 7), so it is stored encrypted
  too, bound to its ledger index.

Append-only rows (custody events, ledger leaves, signed tree heads) and the fixed identity of
an item are guarded twice: no code path here updates or deletes them, and the migration adds
triggers that refuse it (only the ``*_enc`` columns may be rewritten, by ``cpu keys rotate``,
which re-wraps data keys without touching a plaintext). A database owner can still drop the
triggers; that is what ``cpu ledger verify`` is for.

Table names start with ``evidence_`` or ``custody_ledger_`` (or ``forensics_``), so the five
services' models never clash when one process imports them all.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

TZ = sa.DateTime(timezone=True)
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ITEMS = "evidence_items"
TRANSFERS = "evidence_custody_transfers"
EVENTS = "evidence_custody_events"
ANALYSES = "evidence_analyses"
LEAVES = "custody_ledger_leaves"
HEADS = "custody_ledger_tree_heads"
STATE = "custody_ledger_state"
KNOWN_CASES = "forensics_known_cases"


class EvidenceItemRow(SQLModel, table=True):
    """One exhibit: what it is (fixed at registration) and its custody state (changing)."""

    __tablename__ = ITEMS

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(max_length=128, index=True)
    type: str = Field(max_length=32)
    parent_id: str | None = Field(default=None, max_length=36, foreign_key=f"{ITEMS}.id")
    description_enc: str = Field(sa_type=sa.Text)
    collected_by_enc: str = Field(sa_type=sa.Text)
    collected_at: datetime = Field(sa_type=TZ)
    collected_location_enc: str = Field(sa_type=sa.Text)
    sha256: str | None = Field(default=None, max_length=64, index=True)
    md5: str | None = Field(default=None, max_length=32)
    sha1: str | None = Field(default=None, max_length=40)
    acquisition_tool: str | None = Field(default=None, max_length=200)
    registered_by: str = Field(max_length=128)
    registered_at: datetime = Field(sa_type=TZ)
    # Custody state, as of the item's last custody event (checked against it on every load).
    custodian: str = Field(max_length=128, index=True)
    status: str = Field(max_length=20)
    seal_number: str = Field(max_length=64, index=True)
    seal_condition: str = Field(max_length=16)
    storage_location_enc: str = Field(sa_type=sa.Text)
    last_sequence: int
    last_movement_at: datetime = Field(sa_type=TZ)
    away_kind: str | None = Field(default=None, max_length=20)
    version: int
    # Events published about this item: the aggregate_version of the next is this + 1.
    event_seq: int = 0
    updated_at: datetime = Field(sa_type=TZ)


class CustodyTransferRow(SQLModel, table=True):
    """A requested movement: pending until the receiver accepts, or withdrawn / refused."""

    __tablename__ = TRANSFERS

    id: str = Field(primary_key=True, max_length=36)
    item_id: str = Field(max_length=36, foreign_key=f"{ITEMS}.id", index=True)
    kind: str = Field(max_length=20)
    from_user: str = Field(max_length=128)
    to_user: str = Field(max_length=128, index=True)
    purpose_enc: str = Field(sa_type=sa.Text)
    location_enc: str = Field(sa_type=sa.Text)
    at: datetime = Field(sa_type=TZ)
    recorded_at: datetime = Field(sa_type=TZ)
    seal_number: str = Field(max_length=64)
    seal_condition: str = Field(max_length=16)
    seal_change_reason_enc: str | None = Field(default=None, sa_type=sa.Text)
    status: str = Field(max_length=16, index=True)
    closed_by: str | None = Field(default=None, max_length=128)
    closed_at: datetime | None = Field(default=None, sa_type=TZ)
    close_reason_enc: str | None = Field(default=None, sa_type=sa.Text)


class CustodyEventRow(SQLModel, table=True):
    """One accepted custody step: the record its ledger leaf is recomputed from."""

    __tablename__ = EVENTS
    __table_args__ = (sa.UniqueConstraint("item_id", "sequence", name="uq_custody_item_sequence"),)

    id: str = Field(primary_key=True, max_length=36)
    item_id: str = Field(max_length=36, foreign_key=f"{ITEMS}.id", index=True)
    case_id: str = Field(max_length=128)
    sequence: int
    kind: str = Field(max_length=20)
    # None on the registration: its giver is the collector, a name kept encrypted on the item.
    from_user: str | None = Field(default=None, max_length=128)
    to_user: str = Field(max_length=128)
    purpose_enc: str = Field(sa_type=sa.Text)
    location_enc: str = Field(sa_type=sa.Text)
    at: datetime = Field(sa_type=TZ)
    requested_at: datetime | None = Field(default=None, sa_type=TZ)
    recorded_at: datetime = Field(sa_type=TZ)
    transfer_id: str | None = Field(default=None, max_length=36, unique=True)
    seal_number: str = Field(max_length=64)
    seal_condition: str = Field(max_length=16)
    seal_change_reason_enc: str | None = Field(default=None, sa_type=sa.Text)
    receipt_note_enc: str | None = Field(default=None, sa_type=sa.Text)
    ledger_index: int = Field(sa_column=sa.Column(BIGINT, nullable=False, unique=True))


class LedgerLeafRow(SQLModel, table=True):
    """A ledger entry: the leaf bytes as appended (encrypted) and their RFC 9162 leaf hash."""

    __tablename__ = LEAVES

    ledger_index: int = Field(sa_column=sa.Column(BIGINT, primary_key=True, autoincrement=False))
    event_id: str = Field(max_length=36, unique=True)
    item_id: str = Field(max_length=36, index=True)
    leaf_enc: str = Field(sa_type=sa.Text)
    leaf_hash: bytes = Field(sa_type=sa.LargeBinary(32))
    appended_at: datetime = Field(sa_type=TZ)


class TreeHeadRow(SQLModel, table=True):
    """A signed tree head, one per append (the checkpoint is the signed statement)."""

    __tablename__ = HEADS

    tree_size: int = Field(sa_column=sa.Column(BIGINT, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_type=sa.LargeBinary(32))
    timestamp: datetime = Field(sa_type=TZ)
    checkpoint: str = Field(sa_type=sa.Text)


class LedgerStateRow(SQLModel, table=True):
    """The one row appends lock and update: the size and compact state of the tree.

    ``nodes`` is the concatenation of the roots of the perfect subtrees the size decomposes
    into (:class:`~cpu_forensics.domain.ledger.CompactTree`), so an append never reads old
    leaves. ``cpu ledger verify`` checks it against the tree it recomputes.
    """

    __tablename__ = STATE

    id: int = Field(primary_key=True)
    tree_size: int = Field(sa_column=sa.Column(BIGINT, nullable=False))
    nodes: bytes = Field(sa_type=sa.LargeBinary)
    updated_at: datetime = Field(sa_type=TZ)


class AnalysisRow(SQLModel, table=True):
    """A lab analysis of an item; the result's method and findings are encrypted."""

    __tablename__ = ANALYSES

    id: str = Field(primary_key=True, max_length=36)
    item_id: str = Field(max_length=36, foreign_key=f"{ITEMS}.id", index=True)
    case_id: str = Field(max_length=128)
    type: str = Field(max_length=32)
    requested_by: str = Field(max_length=128)
    requested_at: datetime = Field(sa_type=TZ)
    purpose_enc: str = Field(sa_type=sa.Text)
    status: str = Field(max_length=16, index=True)
    analyst: str | None = Field(default=None, max_length=128, index=True)
    assigned_by: str | None = Field(default=None, max_length=128)
    assigned_at: datetime | None = Field(default=None, sa_type=TZ)
    started_at: datetime | None = Field(default=None, sa_type=TZ)
    result_code: str | None = Field(default=None, max_length=50)
    # {"method", "result_code", "recorded_by", "recorded_at", "summary"}: the current result,
    # and the list of results a reviewer sent back (kept, never erased).
    result_enc: str | None = Field(default=None, sa_type=sa.Text)
    superseded_enc: str | None = Field(default=None, sa_type=sa.Text)
    signed_off_by: str | None = Field(default=None, max_length=128)
    signed_off_at: datetime | None = Field(default=None, sa_type=TZ)
    review_note_enc: str | None = Field(default=None, sa_type=sa.Text)
    cancelled_by: str | None = Field(default=None, max_length=128)
    cancelled_at: datetime | None = Field(default=None, sa_type=TZ)
    cancel_reason_enc: str | None = Field(default=None, sa_type=sa.Text)
    last_step_at: datetime = Field(sa_type=TZ)
    version: int


class KnownCaseRow(SQLModel, table=True):
    """A case as casework announced it (``casework.case.events``): who may see its evidence.

    Keyed by the case's pseudonym, which is all casework's events carry; forensics computes
    the same pseudonym from the case id an item names.
    """

    __tablename__ = KNOWN_CASES

    case_pseudonym: str = Field(primary_key=True, max_length=64)
    teams: str = Field(max_length=100)  # comma-separated team codes
    province_code: str | None = Field(default=None, max_length=2)
    updated_at: datetime = Field(sa_type=TZ)


#: Every column holding ``enc1`` tokens, by table (what ``cpu keys rotate`` re-wraps).
ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {
    ITEMS: (
        "description_enc",
        "collected_by_enc",
        "collected_location_enc",
        "storage_location_enc",
    ),
    TRANSFERS: ("purpose_enc", "location_enc", "seal_change_reason_enc", "close_reason_enc"),
    EVENTS: ("purpose_enc", "location_enc", "seal_change_reason_enc", "receipt_note_enc"),
    LEAVES: ("leaf_enc",),
    ANALYSES: (
        "purpose_enc",
        "result_enc",
        "superseded_enc",
        "review_note_enc",
        "cancel_reason_enc",
    ),
}

#: Tables whose rows are never deleted (disposal is a custody event, not a deletion).
NO_DELETE: tuple[str, ...] = (ITEMS, TRANSFERS, EVENTS, LEAVES, HEADS, ANALYSES)

#: Columns that never change once written: the triggers of the migration refuse an UPDATE
#: naming one of them.
IMMUTABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    EVENTS: (
        "id",
        "item_id",
        "case_id",
        "sequence",
        "kind",
        "from_user",
        "to_user",
        "at",
        "requested_at",
        "recorded_at",
        "transfer_id",
        "seal_number",
        "seal_condition",
        "ledger_index",
    ),
    LEAVES: ("ledger_index", "event_id", "item_id", "leaf_hash", "appended_at"),
    HEADS: ("tree_size", "root_hash", "timestamp", "checkpoint"),
    ITEMS: (
        "id",
        "case_id",
        "type",
        "parent_id",
        "collected_at",
        "sha256",
        "md5",
        "sha1",
        "acquisition_tool",
        "registered_by",
        "registered_at",
    ),
}
