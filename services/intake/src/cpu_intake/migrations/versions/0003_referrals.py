"""Referrals: personal fields encrypted, blind-index digests, decisions, yearly references.

Revision ID: intake_0003
Revises: intake_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0003"
down_revision = "intake_0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "referral",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("reference", sa.String(20), nullable=False, unique=True),
        sa.Column("pseudonym", sa.String(40), nullable=False, unique=True),
        sa.Column("source", sa.String(30), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("submitted_at", TZ, nullable=False),
        sa.Column("submitted_on", sa.Date(), nullable=False),
        sa.Column("submitted_by", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("teams", sa.String(100), nullable=False),
        sa.Column("concerns", sa.String(400), nullable=False),
        sa.Column("rule_ids", sa.String(600), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("province_code", sa.String(2), nullable=False),
        sa.Column("children_count", sa.Integer(), nullable=False),
        sa.Column("immediate_danger", sa.Boolean(), nullable=False),
        sa.Column("injuries", sa.Boolean(), nullable=False),
        sa.Column("reporter_anonymous", sa.Boolean(), nullable=False),
        sa.Column("reporter_enc", sa.Text(), nullable=True),
        sa.Column("perpetrators_enc", sa.Text(), nullable=False),
        sa.Column("narrative_enc", sa.Text(), nullable=False),
        sa.Column("same_child_as_id", sa.Uuid(), sa.ForeignKey("referral.id"), nullable=True),
        sa.Column("match_decision_pending", sa.Boolean(), nullable=False),
        sa.Column("triaged_published_at", TZ, nullable=True),
        sa.Column("withdrawal_reason", sa.String(50), nullable=True),
        sa.Column("case_id", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint("priority IN ('P1', 'P2', 'P3')", name="ck_referral_priority"),
        sa.CheckConstraint(
            "status IN ('submitted', 'triaged', 'linked', 'case_opened', 'withdrawn')",
            name="ck_referral_status",
        ),
    )
    op.create_index("ix_referral_submitted_on_priority", "referral", ["submitted_on", "priority"])
    op.create_index("ix_referral_submitted_at", "referral", ["submitted_at", "id"])
    op.create_index("ix_referral_status", "referral", ["status"])
    op.create_index("ix_referral_province_code", "referral", ["province_code"])

    op.create_table(
        "referral_child",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("referral_id", sa.Uuid(), sa.ForeignKey("referral.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sex", sa.String(10), nullable=False),
        sa.Column("age_years", sa.Integer(), nullable=True),
        sa.Column("age_estimate", sa.Integer(), nullable=True),
        sa.Column("province_code", sa.String(2), nullable=False),
        sa.Column("given_name_enc", sa.Text(), nullable=True),
        sa.Column("family_name_enc", sa.Text(), nullable=True),
        sa.Column("name_km_enc", sa.Text(), nullable=True),
        sa.Column("date_of_birth_enc", sa.Text(), nullable=True),
        sa.Column("district_enc", sa.Text(), nullable=True),
        sa.Column("commune_enc", sa.Text(), nullable=True),
        sa.Column("village_enc", sa.Text(), nullable=True),
        sa.Column("digest_counts", sa.Text(), nullable=False),
        sa.UniqueConstraint("referral_id", "position"),
    )
    op.create_index("ix_referral_child_referral_id", "referral_child", ["referral_id"])

    op.create_table(
        "referral_match_digest",
        sa.Column("referral_id", sa.Uuid(), sa.ForeignKey("referral.id"), primary_key=True),
        sa.Column("child_position", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(30), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
    )
    # Candidate search: "which referrals share one of these digests, with which kinds?"
    # answered from the index alone.
    op.create_index(
        "ix_referral_match_digest_digest",
        "referral_match_digest",
        ["digest", "referral_id", "kind"],
    )

    op.create_table(
        "referral_match_decision",
        sa.Column("referral_id", sa.Uuid(), sa.ForeignKey("referral.id"), primary_key=True),
        sa.Column(
            "candidate_referral_id", sa.Uuid(), sa.ForeignKey("referral.id"), primary_key=True
        ),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("reasons", sa.String(300), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("decided_at", TZ, nullable=False),
        sa.CheckConstraint(
            "decision IN ('same_child', 'new_child')", name="ck_referral_match_decision"
        ),
    )

    op.create_table(
        "referral_status_change",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("referral_id", sa.Uuid(), sa.ForeignKey("referral.id"), nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason_code", sa.String(50), nullable=True),
    )
    op.create_index(
        "ix_referral_status_change_referral_id", "referral_status_change", ["referral_id"]
    )

    op.create_table(
        "referral_reference_sequence",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_value", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("referral_reference_sequence")
    op.drop_index("ix_referral_status_change_referral_id", table_name="referral_status_change")
    op.drop_table("referral_status_change")
    op.drop_table("referral_match_decision")
    op.drop_index("ix_referral_match_digest_digest", table_name="referral_match_digest")
    op.drop_table("referral_match_digest")
    op.drop_index("ix_referral_child_referral_id", table_name="referral_child")
    op.drop_table("referral_child")
    op.drop_index("ix_referral_province_code", table_name="referral")
    op.drop_index("ix_referral_status", table_name="referral")
    op.drop_index("ix_referral_submitted_at", table_name="referral")
    op.drop_index("ix_referral_submitted_on_priority", table_name="referral")
    op.drop_table("referral")
