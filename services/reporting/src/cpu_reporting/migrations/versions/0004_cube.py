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


def _dimensions() -> list[sa.Column]:
    return [
        sa.Column("province", sa.String(2), primary_key=True),
        sa.Column("team", sa.String(100), primary_key=True),
        sa.Column("offence", sa.String(40), primary_key=True),
    ]


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
    cube = op.create_table(
        "rpt_cube",
        *_dimensions(),
        sa.Column("grain", sa.String(1), primary_key=True),
        sa.Column("period", sa.Date(), primary_key=True),
        *(
            sa.Column(f"m_{m}", sa.BigInteger(), nullable=False, server_default="0")
            for m in METRICS
        ),
        sa.CheckConstraint("grain IN ('m', 'y')", name="ck_rpt_cube_grain"),
    )
    # The primary key serves the total, by-offence and by-team reads (province fixed); this
    # one the by-province read (team and offence fixed, every province).
    op.create_index(
        "ix_rpt_cube_team", "rpt_cube", ["team", "offence", "province", "grain", "period"]
    )
    cube_duration = op.create_table(
        "rpt_cube_duration",
        *_dimensions(),
        sa.Column("measure", sa.String(40), primary_key=True),
        sa.Column("grain", sa.String(1), primary_key=True),
        sa.Column("period", sa.Date(), primary_key=True),
        sa.Column("value", sa.Integer(), primary_key=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("grain IN ('m', 'y')", name="ck_rpt_cube_duration_grain"),
    )
    op.create_index(
        "ix_rpt_cube_duration_team",
        "rpt_cube_duration",
        ["team", "offence", "province", "measure", "grain", "period"],
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
    op.drop_index("ix_rpt_cube_duration_team", table_name="rpt_cube_duration")
    op.drop_table("rpt_cube_duration")
    op.drop_index("ix_rpt_cube_team", table_name="rpt_cube")
    op.drop_table("rpt_cube")
