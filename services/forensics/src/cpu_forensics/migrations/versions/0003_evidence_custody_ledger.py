"""Evidence items, custody transfers and events, the custody ledger, lab analyses, known cases
(see ``cpu_forensics.adapters.tables``), and the triggers that keep custody append-only.

Revision ID: forensics_0003
Revises: forensics_0002
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "forensics_0003"
down_revision = "forensics_0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Kept here, not imported from the tables module: a migration must not change when the
# models do later.
CUSTODY_KINDS = (
    "registered",
    "check_in",
    "transfer",
    "sent_to_lab",
    "returned",
    "court_exhibit",
    "released",
    "destroyed",
)
EVIDENCE_TYPES = (
    "biological_sample",
    "blood",
    "dna_extract",
    "clothing",
    "document",
    "digital_device",
    "forensic_image",
    "other",
)
SEAL_CONDITIONS = ("intact", "damaged", "broken", "missing")
ITEM_STATUSES = ("in_custody", "transfer_pending", "disposed")
TRANSFER_STATUSES = ("pending", "accepted", "withdrawn", "refused")
ANALYSIS_TYPES = ("dna_profile", "blood", "toxicology", "digital_extraction")
ANALYSIS_STATUSES = ("requested", "assigned", "in_progress", "reported", "signed_off", "cancelled")

NO_DELETE = (
    "evidence_items",
    "evidence_custody_transfers",
    "evidence_custody_events",
    "custody_ledger_leaves",
    "custody_ledger_tree_heads",
    "evidence_analyses",
)
IMMUTABLE_COLUMNS = {
    "evidence_custody_events": (
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
    "custody_ledger_leaves": ("ledger_index", "event_id", "item_id", "leaf_hash", "appended_at"),
    "custody_ledger_tree_heads": ("tree_size", "root_hash", "timestamp", "checkpoint"),
    "evidence_items": (
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
REFUSE_FUNCTION = "forensics_refuse_change"


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _guard_statements(dialect: str) -> list[str]:
    """Triggers refusing DELETE (and TRUNCATE) on custody tables and UPDATE of fixed columns."""
    statements: list[str] = []
    if dialect == "postgresql":
        statements.append(
            f"CREATE OR REPLACE FUNCTION {REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'custody records are append-only: % on % refused', "
            "TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        for table in NO_DELETE:
            statements.append(
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()"
            )
            statements.append(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()"
            )
        for table, columns in IMMUTABLE_COLUMNS.items():
            statements.append(
                f"CREATE TRIGGER {table}_fixed_columns BEFORE UPDATE OF {', '.join(columns)} "
                f"ON {table} FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()"
            )
        return statements
    if dialect == "sqlite":
        for table in NO_DELETE:
            statements.append(
                f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN "
                f"SELECT RAISE(ABORT, 'custody records are append-only: DELETE on {table}'); END"
            )
        for table, columns in IMMUTABLE_COLUMNS.items():
            statements.append(
                f"CREATE TRIGGER {table}_fixed_columns BEFORE UPDATE OF {', '.join(columns)} "
                f"ON {table} BEGIN SELECT RAISE(ABORT, "
                f"'custody records are append-only: UPDATE on {table}'); END"
            )
        return statements
    raise RuntimeError(f"no append-only triggers for the {dialect} dialect")


def upgrade() -> None:
    op.create_table(
        "evidence_items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.String(36), sa.ForeignKey("evidence_items.id"), nullable=True),
        sa.Column("description_enc", sa.Text(), nullable=False),
        sa.Column("collected_by_enc", sa.Text(), nullable=False),
        sa.Column("collected_at", TZ, nullable=False),
        sa.Column("collected_location_enc", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("sha1", sa.String(40), nullable=True),
        sa.Column("acquisition_tool", sa.String(200), nullable=True),
        sa.Column("registered_by", sa.String(128), nullable=False),
        sa.Column("registered_at", TZ, nullable=False),
        sa.Column("custodian", sa.String(128), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("seal_number", sa.String(64), nullable=False),
        sa.Column("seal_condition", sa.String(16), nullable=False),
        sa.Column("storage_location_enc", sa.Text(), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.Column("last_movement_at", TZ, nullable=False),
        sa.Column("away_kind", sa.String(20), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint(_in("type", EVIDENCE_TYPES), name="ck_evidence_items_type"),
        sa.CheckConstraint(_in("status", ITEM_STATUSES), name="ck_evidence_items_status"),
        sa.CheckConstraint(
            _in("seal_condition", SEAL_CONDITIONS), name="ck_evidence_items_seal_condition"
        ),
        sa.CheckConstraint("last_sequence >= 0", name="ck_evidence_items_last_sequence"),
    )
    op.create_index("ix_evidence_items_case_id", "evidence_items", ["case_id"])
    op.create_index("ix_evidence_items_custodian", "evidence_items", ["custodian"])
    op.create_index("ix_evidence_items_sha256", "evidence_items", ["sha256"])
    op.create_index("ix_evidence_items_seal_number", "evidence_items", ["seal_number"])

    op.create_table(
        "evidence_custody_transfers",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("evidence_items.id"), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("from_user", sa.String(128), nullable=False),
        sa.Column("to_user", sa.String(128), nullable=False),
        sa.Column("purpose_enc", sa.Text(), nullable=False),
        sa.Column("location_enc", sa.Text(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("seal_number", sa.String(64), nullable=False),
        sa.Column("seal_condition", sa.String(16), nullable=False),
        sa.Column("seal_change_reason_enc", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("closed_by", sa.String(128), nullable=True),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("close_reason_enc", sa.Text(), nullable=True),
        sa.CheckConstraint(_in("kind", CUSTODY_KINDS[1:]), name="ck_custody_transfers_kind"),
        sa.CheckConstraint(_in("status", TRANSFER_STATUSES), name="ck_custody_transfers_status"),
        sa.CheckConstraint("from_user <> to_user", name="ck_custody_transfers_two_people"),
    )
    op.create_index(
        "ix_evidence_custody_transfers_item_id", "evidence_custody_transfers", ["item_id"]
    )
    op.create_index(
        "ix_evidence_custody_transfers_to_user", "evidence_custody_transfers", ["to_user"]
    )
    op.create_index(
        "ix_evidence_custody_transfers_status", "evidence_custody_transfers", ["status"]
    )

    op.create_table(
        "evidence_custody_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("evidence_items.id"), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        # NULL on the registration: its giver is the collector, kept encrypted on the item.
        sa.Column("from_user", sa.String(128), nullable=True),
        sa.Column("to_user", sa.String(128), nullable=False),
        sa.Column("purpose_enc", sa.Text(), nullable=False),
        sa.Column("location_enc", sa.Text(), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("requested_at", TZ, nullable=True),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("transfer_id", sa.String(36), nullable=True, unique=True),
        sa.Column("seal_number", sa.String(64), nullable=False),
        sa.Column("seal_condition", sa.String(16), nullable=False),
        sa.Column("seal_change_reason_enc", sa.Text(), nullable=True),
        sa.Column("receipt_note_enc", sa.Text(), nullable=True),
        sa.Column("ledger_index", BIGINT, nullable=False, unique=True),
        sa.UniqueConstraint("item_id", "sequence", name="uq_custody_item_sequence"),
        sa.CheckConstraint(_in("kind", CUSTODY_KINDS), name="ck_custody_events_kind"),
        sa.CheckConstraint(
            "(kind = 'registered') = (from_user IS NULL)", name="ck_custody_events_from_user"
        ),
        sa.CheckConstraint(
            _in("seal_condition", SEAL_CONDITIONS), name="ck_custody_events_seal_condition"
        ),
        sa.CheckConstraint("sequence >= 0", name="ck_custody_events_sequence"),
        sa.CheckConstraint("ledger_index >= 0", name="ck_custody_events_ledger_index"),
    )
    op.create_index("ix_evidence_custody_events_item_id", "evidence_custody_events", ["item_id"])

    op.create_table(
        "custody_ledger_leaves",
        sa.Column("ledger_index", BIGINT, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("leaf_enc", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("appended_at", TZ, nullable=False),
        sa.CheckConstraint("ledger_index >= 0", name="ck_custody_ledger_leaves_index"),
    )
    op.create_index("ix_custody_ledger_leaves_item_id", "custody_ledger_leaves", ["item_id"])

    op.create_table(
        "custody_ledger_tree_heads",
        sa.Column("tree_size", BIGINT, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("timestamp", TZ, nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.CheckConstraint("tree_size > 0", name="ck_custody_ledger_tree_heads_size"),
    )

    state = op.create_table(
        "custody_ledger_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("tree_size", BIGINT, nullable=False),
        sa.Column("nodes", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_custody_ledger_state_one_row"),
    )
    # The one row every append locks: created here so that no append ever has to create it.
    op.bulk_insert(
        state, [{"id": 1, "tree_size": 0, "nodes": b"", "updated_at": datetime.now(UTC)}]
    )

    op.create_table(
        "evidence_analyses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(36), sa.ForeignKey("evidence_items.id"), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("requested_by", sa.String(128), nullable=False),
        sa.Column("requested_at", TZ, nullable=False),
        sa.Column("purpose_enc", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("analyst", sa.String(128), nullable=True),
        sa.Column("assigned_by", sa.String(128), nullable=True),
        sa.Column("assigned_at", TZ, nullable=True),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("result_code", sa.String(50), nullable=True),
        sa.Column("result_enc", sa.Text(), nullable=True),
        sa.Column("superseded_enc", sa.Text(), nullable=True),
        sa.Column("signed_off_by", sa.String(128), nullable=True),
        sa.Column("signed_off_at", TZ, nullable=True),
        sa.Column("review_note_enc", sa.Text(), nullable=True),
        sa.Column("cancelled_by", sa.String(128), nullable=True),
        sa.Column("cancelled_at", TZ, nullable=True),
        sa.Column("cancel_reason_enc", sa.Text(), nullable=True),
        sa.Column("last_step_at", TZ, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in("type", ANALYSIS_TYPES), name="ck_evidence_analyses_type"),
        sa.CheckConstraint(_in("status", ANALYSIS_STATUSES), name="ck_evidence_analyses_status"),
    )
    op.create_index("ix_evidence_analyses_item_id", "evidence_analyses", ["item_id"])
    op.create_index("ix_evidence_analyses_status", "evidence_analyses", ["status"])
    op.create_index("ix_evidence_analyses_analyst", "evidence_analyses", ["analyst"])

    op.create_table(
        "forensics_known_cases",
        sa.Column("case_pseudonym", sa.String(64), primary_key=True),
        sa.Column("teams", sa.String(100), nullable=False),
        sa.Column("province_code", sa.String(2), nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
    )

    for statement in _guard_statements(op.get_context().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for table, _columns in IMMUTABLE_COLUMNS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_fixed_columns" + _on(dialect, table))
    for table in NO_DELETE:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete" + _on(dialect, table))
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    if dialect == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {REFUSE_FUNCTION}()")
    for table in (
        "forensics_known_cases",
        "evidence_analyses",
        "custody_ledger_state",
        "custody_ledger_tree_heads",
        "custody_ledger_leaves",
        "evidence_custody_events",
        "evidence_custody_transfers",
        "evidence_items",
    ):
        op.drop_table(table)


def _on(dialect: str, table: str) -> str:
    return f" ON {table}" if dialect == "postgresql" else ""
