"""Reporting projections: facts per aggregate, daily and monthly rollups, medians, distincts.

Revision ID: reporting_0003
Revises: reporting_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "reporting_0003"
down_revision = "reporting_0002"
branch_labels = None
depends_on = None

# Frozen here: a later figure gets its own migration.
METRICS = (
    "referrals",
    "investigations",
    "investigations_with_arrest",
    "child_homicides",
    "arrests",
    "charged",
    "convictions",
    "acquittals",
    "sentence_months",
    "svc_medical_care",
    "svc_psychological_counselling",
    "svc_legal_representation",
    "svc_shelter",
    "svc_family_support",
    "svc_partner_referral",
    "evidence_items",
    "lab_analyses_requested",
    "lab_analyses_completed",
    "tips_received",
    "tips_actioned",
    "tips_escalated",
)


def _dimensions() -> list[sa.Column]:
    return [
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("teams", sa.String(100), nullable=False),
        sa.Column("offences", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "rpt_projection_lock",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("writes", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO rpt_projection_lock (id, writes) VALUES (1, 0)")
    op.create_table(
        "rpt_aggregate",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("aggregate_id", sa.String(64), primary_key=True),
        sa.Column("facts", sa.Text(), nullable=False),
    )
    dims = _dimensions()
    op.create_table(
        "rpt_rollup",
        sa.Column("grain", sa.String(1), primary_key=True),
        sa.Column("period", sa.Date(), primary_key=True),
        *(sa.Column(c.name, c.type, primary_key=True) for c in dims),
        *(
            sa.Column(f"m_{m}", sa.BigInteger(), nullable=False, server_default="0")
            for m in METRICS
        ),
        sa.CheckConstraint("grain IN ('d', 'm')", name="ck_rpt_rollup_grain"),
    )
    # The primary key serves period ranges; these serve a province filter and team/offence
    # look-ups within a period.
    op.create_index("ix_rpt_rollup_province", "rpt_rollup", ["grain", "province", "period"])
    op.create_table(
        "rpt_duration",
        sa.Column("grain", sa.String(1), primary_key=True),
        sa.Column("period", sa.Date(), primary_key=True),
        *(sa.Column(c.name, c.type, primary_key=True) for c in _dimensions()),
        sa.Column("measure", sa.String(40), primary_key=True),
        sa.Column("value", sa.Integer(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("grain IN ('d', 'm')", name="ck_rpt_duration_grain"),
    )
    op.create_index(
        "ix_rpt_duration_measure", "rpt_duration", ["measure", "grain", "period", "value"]
    )
    op.create_table(
        "rpt_distinct",
        sa.Column("metric", sa.String(40), primary_key=True),
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("subject_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        *_dimensions(),
    )
    op.create_index("ix_rpt_distinct_day", "rpt_distinct", ["metric", "day"])


def downgrade() -> None:
    op.drop_index("ix_rpt_distinct_day", table_name="rpt_distinct")
    op.drop_table("rpt_distinct")
    op.drop_index("ix_rpt_duration_measure", table_name="rpt_duration")
    op.drop_table("rpt_duration")
    op.drop_index("ix_rpt_rollup_province", table_name="rpt_rollup")
    op.drop_table("rpt_rollup")
    op.drop_table("rpt_aggregate")
    op.drop_table("rpt_projection_lock")
