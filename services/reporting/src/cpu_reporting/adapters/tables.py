"""The reporting store: facts per pseudonymous aggregate, and figures added up for fast reads.

* ``rpt_aggregate``: the facts of one case, tip or referral (JSON of :mod:`..domain.facts`),
  keyed by its pseudonym. Only ids, codes and dates: no field of it can hold personal data.
* ``rpt_rollup``: one row per (grain, period, province, team set, offence set) with one column
  per figure (:data:`~cpu_reporting.domain.contributions.METRICS`). Grain ``d`` rows hold one
  day, grain ``m`` rows one calendar month; a query reads whole months from ``m`` rows and the
  days at either end from ``d`` rows, so a year is about a dozen rows per cell.
* ``rpt_duration``: the same keys plus (measure, value): histograms of whole days or hours, from
  which exact medians are computed in SQL.
* ``rpt_distinct``: (figure, child pseudonym, day, dimensions, case) rows for the one figure
  counted distinct (children given legal representation).
* ``rpt_cube`` and ``rpt_cube_duration``: the monthly rows again (grain ``m``), and added up
  per calendar year (grain ``y``, so a decade reads ten rows per key), keyed by single members
  (``province``, ``team``, ``offence``, each a code, ``""`` for none, or ``*`` for all; see
  :func:`~cpu_reporting.domain.contributions.cube_keys`), so a summary of whole months reads
  the few hundred rows of its answer by equality rather than scanning the set-keyed cells.
  Derived from the monthly ``rpt_rollup``/``rpt_duration`` rows in the same transaction.
* ``rpt_cube_distinct``: the distinct children (``rpt_distinct``) per cube key, day, month
  and year, as additive rows: each child's day under a key adds 1 to ``(key, grain, period,
  prev)``, ``prev`` being the child's previous day under that key (see
  :func:`~cpu_reporting.domain.contributions.first_days`); the children of ``[start, end]`` are
  the sum over its periods where ``prev < start``. Kept per child in the same transaction.
* ``rpt_cube_day``: the daily ``rpt_rollup`` rows again, per day, under the cube keys with at
  most one dimension not ``*`` (:func:`~cpu_reporting.domain.contributions.margin_keys`): the
  total and the three breakdowns of a summary with no filter, for the days at either end of
  its period (a few dozen rows a day instead of every cell of the day).
* ``rpt_projection_lock``: one row; every write of the projection updates it first, so writers
  (four consumer groups, a rebuild) take turns and never compute from a stale read.
"""

from __future__ import annotations

import sqlalchemy as sa

from cpu_reporting.domain.contributions import METRICS

metadata = sa.MetaData()

DIMENSION_COLUMNS = ("province", "teams", "offences")


def metric_column(metric: str) -> str:
    return f"m_{metric}"


def _dimensions() -> list[sa.Column]:
    return [
        sa.Column("province", sa.String(2), nullable=False),
        sa.Column("teams", sa.String(100), nullable=False),
        sa.Column("offences", sa.Text(), nullable=False),
    ]


projection_lock = sa.Table(
    "rpt_projection_lock",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("writes", sa.BigInteger(), nullable=False),
)

aggregate = sa.Table(
    "rpt_aggregate",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("aggregate_id", sa.String(64), primary_key=True),
    sa.Column("facts", sa.Text(), nullable=False),
)

rollup = sa.Table(
    "rpt_rollup",
    metadata,
    sa.Column("grain", sa.String(1), primary_key=True),
    sa.Column("period", sa.Date(), primary_key=True),
    *(sa.Column(c.name, c.type, primary_key=True) for c in _dimensions()),
    *(
        sa.Column(metric_column(m), sa.BigInteger(), nullable=False, server_default="0")
        for m in METRICS
    ),
)

duration = sa.Table(
    "rpt_duration",
    metadata,
    sa.Column("grain", sa.String(1), primary_key=True),
    sa.Column("period", sa.Date(), primary_key=True),
    *(sa.Column(c.name, c.type, primary_key=True) for c in _dimensions()),
    sa.Column("measure", sa.String(40), primary_key=True),
    sa.Column("value", sa.Integer(), primary_key=True),
    sa.Column("n", sa.BigInteger(), nullable=False),
)

distinct = sa.Table(
    "rpt_distinct",
    metadata,
    sa.Column("metric", sa.String(40), primary_key=True),
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date(), primary_key=True),
    *_dimensions(),
)

CUBE_COLUMNS = ("province", "team", "offence")


def _cube_dimensions() -> list[sa.Column]:
    return [
        sa.Column("province", sa.String(2), primary_key=True),
        sa.Column("team", sa.String(100), primary_key=True),
        sa.Column("offence", sa.String(40), primary_key=True),
    ]


cube = sa.Table(
    "rpt_cube",
    metadata,
    *_cube_dimensions(),
    sa.Column("grain", sa.String(1), primary_key=True),
    sa.Column("period", sa.Date(), primary_key=True),
    *(
        sa.Column(metric_column(m), sa.BigInteger(), nullable=False, server_default="0")
        for m in METRICS
    ),
)

cube_duration = sa.Table(
    "rpt_cube_duration",
    metadata,
    *_cube_dimensions(),
    sa.Column("measure", sa.String(40), primary_key=True),
    sa.Column("grain", sa.String(1), primary_key=True),
    sa.Column("period", sa.Date(), primary_key=True),
    sa.Column("value", sa.Integer(), primary_key=True),
    sa.Column("n", sa.BigInteger(), nullable=False),
)

cube_distinct = sa.Table(
    "rpt_cube_distinct",
    metadata,
    sa.Column("metric", sa.String(40), primary_key=True),
    *_cube_dimensions(),
    sa.Column("grain", sa.String(1), primary_key=True),
    sa.Column("period", sa.Date(), primary_key=True),
    sa.Column("prev", sa.Date(), primary_key=True),
    sa.Column("n", sa.BigInteger(), nullable=False),
)

cube_day = sa.Table(
    "rpt_cube_day",
    metadata,
    *_cube_dimensions(),
    sa.Column("period", sa.Date(), primary_key=True),
    *(
        sa.Column(metric_column(m), sa.BigInteger(), nullable=False, server_default="0")
        for m in METRICS
    ),
)

PROJECTION_TABLES = (
    aggregate,
    rollup,
    duration,
    distinct,
    cube,
    cube_duration,
    cube_distinct,
    cube_day,
)
