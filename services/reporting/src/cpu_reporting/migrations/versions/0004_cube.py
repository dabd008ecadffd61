"""Reporting cube: figures per month and per year, keyed by single province, team, offence.

The monthly rows of ``rpt_rollup``/``rpt_duration`` again, per month (grain ``m``) and per
calendar year (grain ``y``), each added to every ``(province or *, team or *, offence or *)``
key its sets expand to, so that a summary of whole months reads its answer by equality. Filled
here from the monthly rows already held.

Revision ID: reporting_0004
Revises: reporting_0003
"""

from collections import defaultdict
from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "reporting_0004"
down_revision = "reporting_0003"
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
    team_keys = [v for v in teams.split("|") if v] or [""]
    offence_keys = [v for v in offences.split("|") if v] or [""]
    return [
        (p, t, o) for p in (province, ALL) for t in (*team_keys, ALL) for o in (*offence_keys, ALL)
    ]


def _date(value: object) -> date:
    # SQLite hands dates back as text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def upgrade() -> None:
    # A read fixes two of (province, team, offence) and takes every value of the third, over
    # a run of periods of one grain: each index puts two dimensions, then grain and period,
    # before the third, so every read is one contiguous range. The primary key serves the
    # total and the breakdown by offence.
    cube = op.create_table(
        "rpt_cube",
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("offence", sa.String(40), nullable=False),
        sa.Column("grain", sa.String(1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        *(
            sa.Column(f"m_{m}", sa.BigInteger(), nullable=False, server_default="0")
            for m in METRICS
        ),
        sa.PrimaryKeyConstraint("province", "team", "grain", "period", "offence"),
        sa.CheckConstraint("grain IN ('m', 'y')", name="ck_rpt_cube_grain"),
    )
    op.create_index(
        "ix_rpt_cube_by_province", "rpt_cube", ["team", "offence", "grain", "period", "province"]
    )
    op.create_index(
        "ix_rpt_cube_by_team", "rpt_cube", ["province", "offence", "grain", "period", "team"]
    )
    cube_duration = op.create_table(
        "rpt_cube_duration",
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("offence", sa.String(40), nullable=False),
        sa.Column("measure", sa.String(40), nullable=False),
        sa.Column("grain", sa.String(1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "province", "team", "grain", "period", "offence", "measure", "value"
        ),
        sa.CheckConstraint("grain IN ('m', 'y')", name="ck_rpt_cube_duration_grain"),
    )
    op.create_index(
        "ix_rpt_cube_duration_by_province",
        "rpt_cube_duration",
        ["team", "offence", "grain", "period", "province"],
    )
    op.create_index(
        "ix_rpt_cube_duration_by_team",
        "rpt_cube_duration",
        ["province", "offence", "grain", "period", "team"],
    )
    bind = op.get_bind()
    columns = ", ".join(f"m_{m}" for m in METRICS)
    counts: dict[tuple[str, str, str, str, date], list[int]] = {}
    for row in bind.execute(
        sa.text(
            f"SELECT period, province, teams, offences, {columns} FROM rpt_rollup "  # noqa: S608
            "WHERE grain = 'm'"
        )
    ):
        month = _date(row[0])
        for key in _keys(row[1], row[2], row[3]):
            for grain, period in (("m", month), ("y", month.replace(month=1))):
                target = counts.setdefault((*key, grain, period), [0] * len(METRICS))
                for i, v in enumerate(row[4:]):
                    target[i] += int(v)
    durations: dict[tuple[str, str, str, str, str, date, int], int] = defaultdict(int)
    for period, province, teams, offences, measure, value, n in bind.execute(
        sa.text(
            "SELECT period, province, teams, offences, measure, value, n FROM rpt_duration "
            "WHERE grain = 'm'"
        )
    ):
        month = _date(period)
        for key in _keys(province, teams, offences):
            for grain, first_day in (("m", month), ("y", month.replace(month=1))):
                durations[(*key, measure, grain, first_day, value)] += int(n)
    names = ("province", "team", "offence", "grain", "period")
    rows = [
        dict(zip(names, key, strict=True))
        | {f"m_{m}": v for m, v in zip(METRICS, values, strict=True)}
        for key, values in counts.items()
        if any(values)
    ]
    for start in range(0, len(rows), 5000):
        op.bulk_insert(cube, rows[start : start + 5000])
    duration_names = ("province", "team", "offence", "measure", "grain", "period", "value")
    duration_rows = [
        dict(zip(duration_names, key, strict=True)) | {"n": n} for key, n in durations.items() if n
    ]
    for start in range(0, len(duration_rows), 5000):
        op.bulk_insert(cube_duration, duration_rows[start : start + 5000])


def downgrade() -> None:
    op.drop_index("ix_rpt_cube_duration_by_team", table_name="rpt_cube_duration")
    op.drop_index("ix_rpt_cube_duration_by_province", table_name="rpt_cube_duration")
    op.drop_table("rpt_cube_duration")
    op.drop_index("ix_rpt_cube_by_team", table_name="rpt_cube")
    op.drop_index("ix_rpt_cube_by_province", table_name="rpt_cube")
    op.drop_table("rpt_cube")
