"""The append-only audit log.

Revision ID: intake_0002
Revises: intake_0001
"""

from alembic import op

from cpu_shared.security.audit import create_audit_table, drop_audit_table

revision = "intake_0002"
down_revision = "intake_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_table(op)


def downgrade() -> None:
    drop_audit_table(op)
