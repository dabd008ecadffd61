"""Cases, their children, referrals, assignments, transitions, outcomes, services, deadlines
and linked evidence (see ``cpu_casework.adapters.tables``).

Revision ID: casework_0003
Revises: casework_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "casework_0003"
down_revision = "casework_0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _case_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), nullable=False)


def _suspect_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("suspect_id", sa.String(36), sa.ForeignKey("case_suspects.id"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("pseudonym", sa.String(64), nullable=False, unique=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("origin_id", sa.String(64), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("province_code", sa.String(2), nullable=True),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("referral_received_at", TZ, nullable=True),
        sa.Column("concerns", sa.JSON(), nullable=False),
        sa.Column("teams", sa.JSON(), nullable=False),
        sa.Column("lead_team", sa.String(8), nullable=True),
        sa.Column("investigator_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("child_homicide", sa.Boolean(), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("origin", "origin_id", name="uq_cases_origin"),
        sa.CheckConstraint("origin IN ('referral', 'tip')", name="ck_cases_origin"),
        sa.CheckConstraint("priority IN ('P1', 'P2', 'P3')", name="ck_cases_priority"),
    )
    op.create_index("ix_cases_province_code", "cases", ["province_code"])
    op.create_index("ix_cases_lead_team", "cases", ["lead_team"])
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_opened_at", "cases", ["opened_at"])

    op.create_table(
        "case_teams",
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("team", sa.String(8), primary_key=True),
    )
    op.create_index("ix_case_teams_team", "case_teams", ["team"])

    op.create_table(
        "case_children",
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("child_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("age_years", sa.Integer(), nullable=True),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("referred_at", TZ, nullable=False),
        sa.Column("referral_id", sa.String(64), nullable=True),
        sa.Column("first_contact_at", TZ, nullable=True),
        sa.Column("first_contact_by", sa.String(200), nullable=True),
    )

    op.create_table(
        "case_referrals",
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("referral_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("is_origin", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("linked_at", TZ, nullable=True),
        sa.Column("linked_by", sa.String(200), nullable=True),
        sa.Column("same_child_as", sa.String(64), nullable=True),
    )
    # A referral is active on one case at most: the natural key of opening and linking.
    op.create_index(
        "uq_case_referrals_active",
        "case_referrals",
        ["referral_id"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    op.create_index("ix_case_referrals_same_child_as", "case_referrals", ["same_child_as"])

    op.create_table(
        "case_assignments",
        sa.Column("id", sa.String(36), primary_key=True),
        _case_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(8), nullable=False),
        sa.Column("investigator_id", sa.String(200), nullable=True),
        sa.Column("province_code", sa.String(2), nullable=True),
        sa.Column("assigned_at", TZ, nullable=False),
        sa.Column("assigned_by", sa.String(200), nullable=False),
        sa.Column("reassignment", sa.Boolean(), nullable=False),
        sa.Column("reason_code", sa.String(50), nullable=True),
        sa.Column("reason_text_enc", sa.Text(), nullable=True),
    )
    op.create_index("ix_case_assignments_case_id", "case_assignments", ["case_id"])

    op.create_table(
        "case_transitions",
        sa.Column("id", sa.String(36), primary_key=True),
        _case_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(32), nullable=False),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason_code", sa.String(50), nullable=False),
        sa.Column("reason_text_enc", sa.Text(), nullable=True),
        sa.Column("cycle", sa.Integer(), nullable=False),
    )
    op.create_index("ix_case_transitions_case_id", "case_transitions", ["case_id"])

    op.create_table(
        "case_suspects",
        sa.Column("id", sa.String(36), primary_key=True),
        _case_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("details_enc", sa.Text(), nullable=False),
        sa.Column("identified_at", TZ, nullable=False),
        sa.Column("identified_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_case_suspects_case_id", "case_suspects", ["case_id"])

    op.create_table(
        "case_arrests",
        sa.Column("id", sa.String(36), primary_key=True),
        _case_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        _suspect_fk(),
        sa.Column("arrested_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.UniqueConstraint("case_id", "suspect_id", "arrested_on", "cycle", name="uq_arrest"),
    )
    op.create_index("ix_case_arrests_case_id", "case_arrests", ["case_id"])

    op.create_table(
        "case_charges",
        sa.Column("id", sa.String(36), primary_key=True),
        _case_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        _suspect_fk(),
        sa.Column("offence_codes", sa.JSON(), nullable=False),
        sa.Column("charged_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
    )
    op.create_index("ix_case_charges_case_id", "case_charges", ["case_id"])

    op.create_table(
        "case_court_outcomes",
        sa.Column("id", sa.String(36), primary_key=True),
        _case_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        _suspect_fk(),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("offence_codes", sa.JSON(), nullable=False),
        sa.Column("sentence_years", sa.Integer(), nullable=True),
        sa.Column("sentence_months", sa.Integer(), nullable=True),
        sa.Column("decided_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.UniqueConstraint("case_id", "suspect_id", "cycle", name="uq_court_outcome"),
        sa.CheckConstraint("outcome IN ('convicted', 'acquitted')", name="ck_court_outcome"),
    )
    op.create_index("ix_case_court_outcomes_case_id", "case_court_outcomes", ["case_id"])

    op.create_table(
        "case_victim_services",
        sa.Column("id", sa.String(36), primary_key=True),
        _case_fk(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(64), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("provider_code", sa.String(50), nullable=False),
        sa.Column("provided_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.UniqueConstraint(
            "case_id", "child_id", "service", "provider_code", "provided_on", name="uq_service"
        ),
    )
    op.create_index("ix_case_victim_services_case_id", "case_victim_services", ["case_id"])

    op.create_table(
        "case_first_contact_tasks",
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("child_id", sa.String(64), primary_key=True),
        sa.Column("team", sa.String(8), nullable=True),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("province_code", sa.String(2), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("due_at", TZ, nullable=False),
        sa.Column("contacted_at", TZ, nullable=True),
        sa.Column("case_closed", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_index("ix_case_first_contact_tasks_due_at", "case_first_contact_tasks", ["due_at"])
    op.create_index("ix_case_first_contact_tasks_status", "case_first_contact_tasks", ["status"])

    op.create_table(
        "case_evidence_items",
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("case_pseudonym", sa.String(64), nullable=False),
        sa.Column("item_type", sa.String(32), nullable=True),
        sa.Column("parent_item_id", sa.String(64), nullable=True),
        sa.Column("collected_at", TZ, nullable=True),
        sa.Column("registered_at", TZ, nullable=True),
        sa.Column("custody_kind", sa.String(32), nullable=True),
        sa.Column("custody_at", TZ, nullable=True),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("disposed", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_case_evidence_items_case_pseudonym", "case_evidence_items", ["case_pseudonym"]
    )

    op.create_table(
        "case_evidence_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("case_pseudonym", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("code", sa.String(50), nullable=True),
        sa.Column("result_code", sa.String(50), nullable=True),
        sa.Column("analysis_id", sa.String(64), nullable=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_case_evidence_events_item_id", "case_evidence_events", ["item_id"])
    op.create_index(
        "ix_case_evidence_events_case_pseudonym", "case_evidence_events", ["case_pseudonym"]
    )


def downgrade() -> None:
    for table in (
        "case_evidence_events",
        "case_evidence_items",
        "case_first_contact_tasks",
        "case_victim_services",
        "case_court_outcomes",
        "case_charges",
        "case_arrests",
        "case_suspects",
        "case_transitions",
        "case_assignments",
        "case_referrals",
        "case_children",
        "case_teams",
        "cases",
    ):
        op.drop_table(table)
