"""Reporting: distinct children per cube key, as additive rows; children found by pseudonym.

``rpt_cube_distinct`` holds, for each distinct figure's child and each ``(province, team,
offence)`` cube key its rows expand to, one row per day of the child under the key (grain
``d``), and per month (``m``) and year (``y``) for the days whose previous day under the key
falls in an earlier month or year, with that previous day (``prev``, ``0001-01-01`` for none).
The children of ``[start, end]`` are the sum of ``n`` over its days, months and years where
``prev < start``, so a summary reads a few rows per key instead of every child. Filled here
from the ``rpt_distinct`` rows already held. ``ix_rpt_distinct_subject`` finds a child's rows
when a live write changes them.

Revision ID: reporting_0005
Revises: reporting_0004
"""

from datetime import date

import sqlalchemy as sa
from alembic import op

revision = "reporting_0005"
down_revision = "reporting_0004"
branch_labels = None
depends_on = None

ALL = "*"
NO_PREVIOUS = date.min


def _keys(province: str, teams: str, offences: str) -> list[tuple[str, str, str]]:
    team_keys = [v for v in teams.split("|") if v] or [""]
    offence_keys = [v for v in offences.split("|") if v] or [""]
    return [
        (p, t, o) for p in (province, ALL) for t in (*team_keys, ALL) for o in (*offence_keys, ALL)
    ]


def _date(value: object) -> date:
    # SQLite hands dates back as text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _add_child(
    rows: dict[tuple[str, str, str, str, str, date, date], int],
    metric: str,
    held: list[tuple[date, str, str, str]],
) -> None:
    # Frozen copy of contributions.first_days, as of this revision.
    by_key: dict[tuple[str, str, str], set[date]] = {}
    for day, province, teams, offences in held:
        for key in _keys(province, teams, offences):
            by_key.setdefault(key, set()).add(day)
    for (p, t, o), days in by_key.items():
        prev = NO_PREVIOUS
        for day in sorted(days):
            month = day.replace(day=1)
            year = month.replace(month=1)
            for grain, period, kept in (
                ("d", day, True),
                ("m", month, prev < month),
                ("y", year, prev < year),
            ):
                if kept:
                    row = (metric, p, t, o, grain, period, prev)
                    rows[row] = rows.get(row, 0) + 1
            prev = day


def upgrade() -> None:
    # As the cube's: two dimensions, then grain and period, before the third, so that each
    # read (two fixed, every value of the third) is one index range; prev last.
    table = op.create_table(
        "rpt_cube_distinct",
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("team", sa.String(100), nullable=False),
        sa.Column("offence", sa.String(40), nullable=False),
        sa.Column("grain", sa.String(1), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("prev", sa.Date(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "province", "team", "grain", "period", "offence", "prev"),
        sa.CheckConstraint("grain IN ('d', 'm', 'y')", name="ck_rpt_cube_distinct_grain"),
    )
    op.create_index(
        "ix_rpt_cube_distinct_by_province",
        "rpt_cube_distinct",
        ["metric", "team", "offence", "grain", "period", "province", "prev"],
    )
    op.create_index(
        "ix_rpt_cube_distinct_by_team",
        "rpt_cube_distinct",
        ["metric", "province", "offence", "grain", "period", "team", "prev"],
    )
    op.create_index("ix_rpt_distinct_subject", "rpt_distinct", ["metric", "subject_id"])
    bind = op.get_bind()
    rows: dict[tuple[str, str, str, str, str, date, date], int] = {}
    current: tuple[str, str] | None = None
    held: list[tuple[date, str, str, str]] = []
    for metric, subject, day, province, teams, offences in bind.execute(
        sa.text(
            "SELECT metric, subject_id, day, province, teams, offences FROM rpt_distinct "
            "ORDER BY metric, subject_id"
        )
    ):
        if (metric, subject) != current:
            if current is not None:
                _add_child(rows, current[0], held)
            current, held = (metric, subject), []
        held.append((_date(day), province, teams, offences))
    if current is not None:
        _add_child(rows, current[0], held)
    names = ("metric", "province", "team", "offence", "grain", "period", "prev")
    records = [dict(zip(names, key, strict=True)) | {"n": n} for key, n in rows.items()]
    for start in range(0, len(records), 5000):
        op.bulk_insert(table, records[start : start + 5000])


def downgrade() -> None:
    op.drop_index("ix_rpt_distinct_subject", table_name="rpt_distinct")
    op.drop_index("ix_rpt_cube_distinct_by_team", table_name="rpt_cube_distinct")
    op.drop_index("ix_rpt_cube_distinct_by_province", table_name="rpt_cube_distinct")
    op.drop_table("rpt_cube_distinct")
