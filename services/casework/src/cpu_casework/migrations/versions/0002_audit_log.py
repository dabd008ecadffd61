"""The append-only audit log.

Revision ID: casework_0002
Revises: casework_0001
"""

from alembic import op

from cpu_shared.security.audit import create_audit_table, drop_audit_table

revision = "casework_0002"
down_revision = "casework_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_table(op)


def downgrade() -> None:
    drop_audit_table(op)
