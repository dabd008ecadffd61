"""Probe tables and the messaging tables.

Revision ID: probe_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from cpu_shared.messaging.tables import create_messaging_tables

revision = "probe_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_messaging_tables(op)
    op.create_table(
        "probe_effect",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, index=True),
        sa.Column("aggregate_id", sa.String(200), nullable=False),
    )
    op.create_table(
        "probe_write",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("aggregate_id", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("probe_write")
    op.drop_table("probe_effect")
