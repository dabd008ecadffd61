"""Tips and their versions, linking, clusters, hash matches, quarantine, known-hash lists,
import jobs and the analysts' actions (see ``cpu_icac.adapters.tables``).

Revision ID: icac_0003
Revises: icac_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "icac_0003"
down_revision = "icac_0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "icac_tip",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("provider", sa.String(66), nullable=False),
        sa.Column("report_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("current_version_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("incident_type", sa.String(64), nullable=False),
        sa.Column("annotations", sa.String(200), nullable=False),
        sa.Column("provider_priority", sa.String(1), nullable=True),
        sa.Column("incident_at", TS, nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("victim_count", sa.Integer(), nullable=False),
        sa.Column("youngest_victim_age", sa.Integer(), nullable=True),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("in_jurisdiction", sa.Boolean(), nullable=False),
        sa.Column("country_code", sa.String(2), nullable=True),
        sa.Column("province_code", sa.String(2), nullable=True),
        sa.Column("home_indicators", sa.String(200), nullable=False),
        sa.Column("foreign_countries", sa.String(200), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("priority_rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("priority_floor", sa.String(16), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("hash_match_count", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("disposition", sa.String(32), nullable=True),
        sa.Column("disposed_by", sa.String(200), nullable=True),
        sa.Column("disposed_at", TS, nullable=True),
        sa.Column("duplicate_of", sa.Uuid(), nullable=True),
        sa.Column("event_version", sa.Integer(), nullable=False),
        sa.UniqueConstraint("provider", "report_id", name="uq_icac_tip_report"),
        sa.CheckConstraint(
            "status IN ('queued', 'claimed', 'escalated', 'closed')", name="ck_icac_tip_status"
        ),
        sa.CheckConstraint(
            "priority IN ('P1', 'P2', 'P3', 'informational')", name="ck_icac_tip_priority"
        ),
    )
    op.create_index(
        "ix_icac_tip_queue", "icac_tip", ["status", "priority_rank", "received_at", "id"]
    )
    op.create_index("ix_icac_tip_cluster", "icac_tip", ["cluster_id"])
    op.create_index("ix_icac_tip_province", "icac_tip", ["province_code"])

    op.create_table(
        "icac_tip_version",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tip_id", sa.Uuid(), sa.ForeignKey("icac_tip.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("provenance", sa.String(200), nullable=False),
        sa.Column("received_by", sa.String(200), nullable=True),
        sa.Column("report", sa.Text(), nullable=False),
        sa.UniqueConstraint("tip_id", "version", name="uq_icac_tip_version"),
        sa.UniqueConstraint("tip_id", "fingerprint", name="uq_icac_tip_version_fingerprint"),
    )

    op.create_table(
        "icac_link_key",
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("tip_id", sa.Uuid(), nullable=False),
    )
    op.create_table(
        "icac_ip_sighting",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("ip_key", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("tip_id", sa.Uuid(), nullable=False),
    )
    op.create_index("ix_icac_ip_sighting_key_at", "icac_ip_sighting", ["ip_key", "at"])

    op.create_table(
        "icac_cluster",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("linked_by", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )

    op.create_table(
        "icac_hash_match",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("tip_id", sa.Uuid(), sa.ForeignKey("icac_tip.id"), nullable=False),
        sa.Column("file_index", sa.Integer(), nullable=False),
        sa.Column("hash_set", sa.String(100), nullable=False),
        sa.Column("algorithm", sa.String(8), nullable=False),
        sa.Column("distance", sa.Integer(), nullable=False),
        sa.Column("category", sa.Integer(), nullable=True),
    )
    op.create_index("ix_icac_hash_match_tip", "icac_hash_match", ["tip_id"])

    op.create_table(
        "icac_quarantine",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("provenance", sa.String(200), nullable=True),
        sa.Column("received_by", sa.String(200), nullable=True),
        sa.Column("import_id", sa.Uuid(), nullable=True),
        sa.Column("item_index", sa.Integer(), nullable=True),
        sa.Column("location", sa.String(64), nullable=True),
        sa.Column("report_id", sa.String(128), nullable=True),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.Column("raw_omitted", sa.String(32), nullable=True),
        sa.Column("raw_sha256", sa.String(64), nullable=True),
    )
    op.create_index("ix_icac_quarantine_received", "icac_quarantine", ["received_at"])

    op.create_table(
        "icac_hash_set",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("format", sa.String(32), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(200), nullable=False),
        sa.Column("uploaded_at", TS, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False, unique=True),
    )
    op.create_table(
        "icac_hash_set_entry",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column(
            "hash_set_id",
            sa.Uuid(),
            sa.ForeignKey("icac_hash_set.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("md5", sa.String(32), nullable=True),
        sa.Column("sha1", sa.String(40), nullable=True),
        sa.Column("pdq", sa.String(64), nullable=True),
        sa.Column("category", sa.Integer(), nullable=True),
    )
    op.create_index("ix_icac_hash_set_entry_set", "icac_hash_set_entry", ["hash_set_id"])

    op.create_table(
        "icac_tip_import",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("bytes_read", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("refusal_code", sa.String(64), nullable=True),
        sa.Column("refusal_reason", sa.Text(), nullable=True),
    )

    op.create_table(
        "icac_tip_action",
        sa.Column("id", BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("tip_id", sa.Uuid(), sa.ForeignKey("icac_tip.id"), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("by_user", sa.String(200), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("disposition", sa.String(32), nullable=True),
        sa.Column("duplicate_of", sa.Uuid(), nullable=True),
        sa.Column("previous_claimant", sa.String(200), nullable=True),
    )
    op.create_index("ix_icac_tip_action_tip", "icac_tip_action", ["tip_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_icac_tip_action_tip", table_name="icac_tip_action")
    op.drop_table("icac_tip_action")
    op.drop_table("icac_tip_import")
    op.drop_index("ix_icac_hash_set_entry_set", table_name="icac_hash_set_entry")
    op.drop_table("icac_hash_set_entry")
    op.drop_table("icac_hash_set")
    op.drop_index("ix_icac_quarantine_received", table_name="icac_quarantine")
    op.drop_table("icac_quarantine")
    op.drop_index("ix_icac_hash_match_tip", table_name="icac_hash_match")
    op.drop_table("icac_hash_match")
    op.drop_table("icac_cluster")
    op.drop_index("ix_icac_ip_sighting_key_at", table_name="icac_ip_sighting")
    op.drop_table("icac_ip_sighting")
    op.drop_table("icac_link_key")
    op.drop_table("icac_tip_version")
    op.drop_index("ix_icac_tip_province", table_name="icac_tip")
    op.drop_index("ix_icac_tip_cluster", table_name="icac_tip")
    op.drop_index("ix_icac_tip_queue", table_name="icac_tip")
    op.drop_table("icac_tip")
