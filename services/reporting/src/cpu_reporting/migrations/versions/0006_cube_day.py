"""Reporting: daily figures under the cube keys an unfiltered summary reads (the margins).

``rpt_cube_day`` holds the daily ``rpt_rollup`` rows again, per day, under the keys with at most
one of (province, team, offence) not ``*``: the total, and each province, team and offence
alone. A summary without filters reads the days at either end of its period from it by
equality (a few dozen rows a day) instead of every set-keyed cell of those days. Filled here
from the daily rows already held.

Revision ID: reporting_0006
Revises: reporting_0005
"""

from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "reporting_0006"
down_revision = "reporting_0005"
branch_labels = None
depends_on = None

# Frozen here, as in 0003: a later figure gets its own migration.
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
ALL = "*"


def _keys(province: str, teams: str, offences: str) -> list[tuple[str, str, str]]:
    return [
        (ALL, ALL, ALL),
        (province, ALL, ALL),
        *((ALL, t, ALL) for t in [v for v in teams.split("|") if v] or [""]),
        *((ALL, ALL, o) for o in [v for v in offences.split("|") if v] or [""]),
    ]


def _date(value: object) -> date:
    # SQLite hands dates back as text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def upgrade() -> None:
    # As the cube's indexes: two dimensions, then the day, before the third.
    table = op.create_table(
        "rpt_cube_day",
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("offence", sa.String(40), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        *(
            sa.Column(f"m_{m}", sa.BigInteger(), nullable=False, server_default="0")
            for m in METRICS
        ),
        sa.PrimaryKeyConstraint("province", "team", "period", "offence"),
    )
    op.create_index(
        "ix_rpt_cube_day_by_province", "rpt_cube_day", ["team", "offence", "period", "province"]
    )
    op.create_index(
        "ix_rpt_cube_day_by_team", "rpt_cube_day", ["province", "offence", "period", "team"]
    )
    bind = op.get_bind()
    columns = ", ".join(f"m_{m}" for m in METRICS)
    counts: dict[tuple[str, str, str, date], list[int]] = {}
    for row in bind.execute(
        sa.text(
            f"SELECT period, province, teams, offences, {columns} FROM rpt_rollup "  # noqa: S608
            "WHERE grain = 'd'"
        )
    ):
        day = _date(row[0])
        for key in _keys(row[1], row[2], row[3]):
            target = counts.setdefault((*key, day), [0] * len(METRICS))
            for i, v in enumerate(row[4:]):
                target[i] += int(v)
    names = ("province", "team", "offence", "period")
    rows = [
        dict(zip(names, key, strict=True))
        | {f"m_{m}": v for m, v in zip(METRICS, values, strict=True)}
        for key, values in counts.items()
        if any(values)
    ]
    for start in range(0, len(rows), 5000):
        op.bulk_insert(table, rows[start : start + 5000])


def downgrade() -> None:
    op.drop_index("ix_rpt_cube_day_by_team", table_name="rpt_cube_day")
    op.drop_index("ix_rpt_cube_day_by_province", table_name="rpt_cube_day")
    op.drop_table("rpt_cube_day")
