"""Reading and writing the projection tables (PostgreSQL in production, SQLite for ``make up``).

The summary reads :func:`read_figures`: whole months and years from the cube, by equality, so
its cost follows the size of its answer, not the number of cases; only the days at either end
of a period, and a breakdown by the very team or offence a query filters on, scan set-keyed
rows (of those days, or of the filtered cells).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_reporting.adapters.tables import (
    CUBE_COLUMNS,
    DIMENSION_COLUMNS,
    aggregate,
    cube,
    cube_day,
    cube_distinct,
    cube_duration,
    distinct,
    duration,
    metric_column,
    rollup,
)
from cpu_reporting.domain.contributions import (
    ALL,
    MEASURES,
    METRICS,
    ChildKey,
    Delta,
    Dims,
    cube_keys,
    first_days,
    margin_keys,
    set_members,
)
from cpu_reporting.domain.facts import Facts, facts_from_json
from cpu_reporting.domain.report import Cell, Median, Query, ReportData, median_of

METRIC_COLUMNS = [metric_column(m) for m in METRICS]
ROLLUP_KEY = ("grain", "period", *DIMENSION_COLUMNS)
DURATION_KEY = (*ROLLUP_KEY, "measure", "value")
DISTINCT_COLUMNS = ("metric", "case_id", "subject_id", "day", *DIMENSION_COLUMNS)
CUBE_KEY = (*CUBE_COLUMNS, "grain", "period")
CUBE_DURATION_KEY = (*CUBE_COLUMNS, "measure", "grain", "period", "value")

CUBE_DISTINCT_KEY = ("metric", *CUBE_COLUMNS, "grain", "period", "prev")
CUBE_DAY_KEY = (*CUBE_COLUMNS, "period")

CubeCounts = dict[tuple[str, str, str, str, date], list[int]]
CubeChildren = dict[tuple[str, str, str, str, str, date, date], int]  # (metric, *ChildKey)
CubeDurations = dict[tuple[str, str, str, str, str, date, int], int]

AggregateKey = tuple[str, str]  # (kind, pseudonym)


def month_of(day: date) -> date:
    return day.replace(day=1)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "postgresql"


def _insert(session: AsyncSession, table: sa.Table) -> Any:
    return (postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert)(table)


# ----------------------------------------------------------------------------- writing


async def take_write_lock(session: AsyncSession) -> None:
    """Serialise writers of the projection (first statement of every writing transaction)."""
    await session.execute(
        sa.text("UPDATE rpt_projection_lock SET writes = writes + 1 WHERE id = 1")
    )


async def load_facts(
    session: AsyncSession, keys: Iterable[AggregateKey]
) -> dict[AggregateKey, Facts]:
    by_kind: dict[str, list[str]] = {}
    for kind, key in keys:
        by_kind.setdefault(kind, []).append(key)
    found: dict[AggregateKey, Facts] = {}
    for kind, ids in by_kind.items():
        for start in range(0, len(ids), 1000):
            rows = await session.execute(
                sa.select(aggregate.c.aggregate_id, aggregate.c.facts).where(
                    aggregate.c.kind == kind,
                    aggregate.c.aggregate_id.in_(ids[start : start + 1000]),
                )
            )
            for aggregate_id, doc in rows:
                found[(kind, aggregate_id)] = facts_from_json(kind, aggregate_id, json.loads(doc))
    return found


def facts_row(kind: str, facts: Facts) -> dict[str, Any]:
    key = getattr(facts, f"{kind}_id")
    return {
        "kind": kind,
        "aggregate_id": key,
        "facts": json.dumps(facts.to_json(), separators=(",", ":"), sort_keys=True),
    }


async def save_facts(session: AsyncSession, facts: dict[AggregateKey, Facts]) -> None:
    if not facts:
        return
    rows = [facts_row(kind, f) for (kind, _), f in sorted(facts.items(), key=lambda kv: kv[0])]
    stmt = _insert(session, aggregate)
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "aggregate_id"], set_={"facts": stmt.excluded.facts}
    )
    await session.execute(stmt, rows)


@dataclass
class RollupRows:
    """Rows to add to the rollup tables, both grains, merged by key (also a ``Sink``)."""

    counts: dict[tuple[str, date, str, str, str], list[int]] = field(default_factory=dict)
    durations: dict[tuple[str, date, str, str, str, str, int], int] = field(default_factory=dict)
    distincts: set[tuple[str, str, str, date, str, str, str]] = field(default_factory=set)

    def add_counts(self, day: date, dims: Dims, counts: Sequence[int]) -> None:
        for grain, period in (("d", day), ("m", month_of(day))):
            key = (grain, period, dims.province, dims.teams, dims.offences)
            row = self.counts.get(key)
            if row is None:
                self.counts[key] = list(counts)
            else:
                for i, v in enumerate(counts):
                    if v:
                        row[i] += v

    def add_duration(self, day: date, dims: Dims, measure: str, value: int, n: int) -> None:
        for grain, period in (("d", day), ("m", month_of(day))):
            key = (grain, period, dims.province, dims.teams, dims.offences, measure, value)
            self.durations[key] = self.durations.get(key, 0) + n

    # -- Sink (the rebuild accumulates contributions straight into these rows) ---------------

    def count(self, day: date, dims: Dims, metric: str, n: int = 1) -> None:
        for grain, period in (("d", day), ("m", month_of(day))):
            key = (grain, period, dims.province, dims.teams, dims.offences)
            row = self.counts.get(key)
            if row is None:
                row = self.counts[key] = [0] * len(METRICS)
            row[_METRIC_INDEX[metric]] += n

    def observe(self, day: date, dims: Dims, measure: str, value: int) -> None:
        self.add_duration(day, dims, measure, value, 1)

    def distinct(self, metric: str, subject: str, day: date, dims: Dims, source: str) -> None:
        self.distincts.add((metric, source, subject, day, *_dims(dims)))

    def cube(self) -> tuple[CubeCounts, CubeDurations]:
        """The cube rows of the monthly rows, per month and per year: each added to every key
        its sets expand to. Done once over the merged monthly rows, which are far fewer than
        the contributions."""
        keys: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
        counts: CubeCounts = {}
        for (grain, month, province, teams, offences), values in self.counts.items():
            if grain != "m" or not any(values):
                continue
            dims = (province, teams, offences)
            expanded = keys.get(dims)
            if expanded is None:
                expanded = keys[dims] = cube_keys(*dims)
            year = month.replace(month=1)
            for p, t, o in expanded:
                for key in ((p, t, o, "m", month), (p, t, o, "y", year)):
                    row = counts.get(key)
                    if row is None:
                        counts[key] = list(values)
                    else:
                        for i, v in enumerate(values):
                            if v:
                                row[i] += v
        durations: CubeDurations = {}
        for (grain, month, province, teams, offences, measure, value), n in self.durations.items():
            if grain != "m" or not n:
                continue
            dims = (province, teams, offences)
            expanded = keys.get(dims)
            if expanded is None:
                expanded = keys[dims] = cube_keys(*dims)
            year = month.replace(month=1)
            for p, t, o in expanded:
                for hkey in (
                    (p, t, o, measure, "m", month, value),
                    (p, t, o, measure, "y", year, value),
                ):
                    durations[hkey] = durations.get(hkey, 0) + n
        return counts, durations

    def days(self) -> dict[tuple[str, str, str, date], list[int]]:
        """The ``rpt_cube_day`` rows of the daily rows: each added to its margin keys."""
        out: dict[tuple[str, str, str, date], list[int]] = {}
        for (grain, day, province, teams, offences), values in self.counts.items():
            if grain != "d" or not any(values):
                continue
            for p, t, o in margin_keys(province, teams, offences):
                row = out.get((p, t, o, day))
                if row is None:
                    out[(p, t, o, day)] = list(values)
                else:
                    for i, v in enumerate(values):
                        if v:
                            row[i] += v
        return out

    def children(self) -> CubeChildren:
        """The distinct-children cube rows of every child in :attr:`distincts`."""
        by_child: dict[tuple[str, str], list[tuple[date, str, str, str]]] = {}
        for metric, _source, subject, day, province, teams, offences in self.distincts:
            by_child.setdefault((metric, subject), []).append((day, province, teams, offences))
        per_metric: dict[str, Counter[ChildKey]] = {}
        for (metric, _), held in by_child.items():
            counter = per_metric.get(metric)
            if counter is None:
                counter = per_metric[metric] = Counter()
            counter.update(first_days(held).keys())  # each count is 1; counted in C
        return {
            (metric, *key): n
            for metric, counter in per_metric.items()
            for key, n in counter.items()
        }

    @classmethod
    def of_delta(cls, delta: Delta) -> RollupRows:
        rows = cls()
        for (day, dims), counts in delta.counts.items():
            rows.add_counts(day, dims, counts)
        for (day, dims, measure, value), n in delta.durations.items():
            rows.add_duration(day, dims, measure, value, n)
        return rows


_METRIC_INDEX = {m: i for i, m in enumerate(METRICS)}


def _add_children(out: CubeChildren, metric: str, rows: dict[ChildKey, int], sign: int) -> None:
    for key, n in rows.items():
        full = (metric, *key)
        out[full] = out.get(full, 0) + sign * n


def _dims(dims: Dims) -> tuple[str, str, str]:
    return dims.province, dims.teams, dims.offences


async def apply_delta(session: AsyncSession, delta: Delta) -> None:
    """Add what changed to the rollups and the distinct rows (inside the caller's transaction)."""
    rows = RollupRows.of_delta(delta)
    count_rows = [
        dict(zip(ROLLUP_KEY, key, strict=True)) | dict(zip(METRIC_COLUMNS, counts, strict=True))
        for key, counts in sorted(rows.counts.items())
        if any(counts)
    ]
    if count_rows:
        stmt = _insert(session, rollup)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(ROLLUP_KEY),
            set_={c: rollup.c[c] + stmt.excluded[c] for c in METRIC_COLUMNS},
        )
        await session.execute(stmt, count_rows)
    duration_rows = [
        dict(zip(DURATION_KEY, key, strict=True)) | {"n": n}
        for key, n in sorted(rows.durations.items())
        if n
    ]
    if duration_rows:
        stmt = _insert(session, duration)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(DURATION_KEY), set_={"n": duration.c.n + stmt.excluded.n}
        )
        await session.execute(stmt, duration_rows)
    cube_counts, cube_durations = rows.cube()
    cube_rows = [
        dict(zip(CUBE_KEY, key, strict=True)) | dict(zip(METRIC_COLUMNS, counts, strict=True))
        for key, counts in sorted(cube_counts.items())
        if any(counts)
    ]
    if cube_rows:
        stmt = _insert(session, cube)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(CUBE_KEY),
            set_={c: cube.c[c] + stmt.excluded[c] for c in METRIC_COLUMNS},
        )
        await session.execute(stmt, cube_rows)
    cube_duration_rows = [
        dict(zip(CUBE_DURATION_KEY, key, strict=True)) | {"n": n}
        for key, n in sorted(cube_durations.items())
        if n
    ]
    if cube_duration_rows:
        stmt = _insert(session, cube_duration)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(CUBE_DURATION_KEY),
            set_={"n": cube_duration.c.n + stmt.excluded.n},
        )
        await session.execute(stmt, cube_duration_rows)
    day_rows = [
        dict(zip(CUBE_DAY_KEY, key, strict=True)) | dict(zip(METRIC_COLUMNS, counts, strict=True))
        for key, counts in sorted(rows.days().items())
        if any(counts)
    ]
    if day_rows:
        stmt = _insert(session, cube_day)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(CUBE_DAY_KEY),
            set_={c: cube_day.c[c] + stmt.excluded[c] for c in METRIC_COLUMNS},
        )
        await session.execute(stmt, day_rows)
    await _apply_children(session, delta)
    for metric, subject, day, _, source in sorted(delta.distinct_removed, key=_distinct_order):
        await session.execute(
            sa.delete(distinct).where(
                distinct.c.metric == metric,
                distinct.c.case_id == source,
                distinct.c.subject_id == subject,
                distinct.c.day == day,
            )
        )
    if delta.distinct_added:
        stmt = _insert(session, distinct).on_conflict_do_nothing()
        await session.execute(
            stmt,
            [
                dict(zip(DISTINCT_COLUMNS, (m, src, subj, day, *_dims(dims)), strict=True))
                for m, subj, day, dims, src in sorted(delta.distinct_added, key=_distinct_order)
            ],
        )


async def _apply_children(session: AsyncSession, delta: Delta) -> None:
    """Recompute the distinct-children cube rows of every child the delta touches: its rows
    before (from ``rpt_distinct`` as held) and after (with the delta's removals and additions,
    as the statements after this one apply them), and add the difference."""
    touched = sorted({(m, subj) for m, subj, *_ in delta.distinct_removed | delta.distinct_added})
    if not touched:
        return
    # (metric, subject) -> (case, day) -> dimensions, as rpt_distinct holds them.
    held: dict[tuple[str, str], dict[tuple[str, date], tuple[str, str, str]]] = {
        key: {} for key in touched
    }
    by_metric: dict[str, list[str]] = {}
    for metric, subject in touched:
        by_metric.setdefault(metric, []).append(subject)
    for metric, subjects in by_metric.items():
        for start in range(0, len(subjects), 1000):
            stmt = sa.select(
                distinct.c.subject_id,
                distinct.c.case_id,
                distinct.c.day,
                distinct.c.province,
                distinct.c.teams,
                distinct.c.offences,
            ).where(
                distinct.c.metric == metric,
                distinct.c.subject_id.in_(subjects[start : start + 1000]),
            )
            for subject, case_id, day, province, teams, offences in await session.execute(stmt):
                held[(metric, subject)][(case_id, _date(day))] = (province, teams, offences)
    after = {key: dict(rows) for key, rows in held.items()}
    for metric, subject, day, _, source in delta.distinct_removed:
        after[(metric, subject)].pop((source, day), None)
    for metric, subject, day, dims, source in delta.distinct_added:
        # Inserted with ON CONFLICT DO NOTHING: a row still held keeps its dimensions.
        after[(metric, subject)].setdefault((source, day), _dims(dims))
    changes: CubeChildren = {}
    for key in touched:
        metric = key[0]
        before_rows = [(day, *dims) for (_, day), dims in held[key].items()]
        after_rows = [(day, *dims) for (_, day), dims in after[key].items()]
        _add_children(changes, metric, first_days(before_rows), -1)
        _add_children(changes, metric, first_days(after_rows), 1)
    records = [
        dict(zip(CUBE_DISTINCT_KEY, key, strict=True)) | {"n": n}
        for key, n in sorted(changes.items())
        if n
    ]
    if records:
        stmt = _insert(session, cube_distinct)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(CUBE_DISTINCT_KEY),
            set_={"n": cube_distinct.c.n + stmt.excluded.n},
        )
        await session.execute(stmt, records)


def _distinct_order(item: tuple[str, str, date, Dims, str]) -> tuple[str, str, str, date]:
    metric, subject, day, _, source = item
    return metric, source, subject, day


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Segment:
    grain: str
    start: date
    end: date


def segments(start: date, end: date) -> list[Segment]:
    """The rollup rows covering ``[start, end]``: whole months from monthly rows, the days at
    either end from daily rows."""
    if end < start:
        return []
    first_whole = start if start.day == 1 else month_of(start + timedelta(days=32 - start.day))
    next_day = end + timedelta(days=1)
    last_whole_end = end if next_day.day == 1 else month_of(end) - timedelta(days=1)
    if first_whole > last_whole_end:
        return [Segment("d", start, end)]
    out = [Segment("m", first_whole, month_of(last_whole_end))]
    if start < first_whole:
        out.append(Segment("d", start, first_whole - timedelta(days=1)))
    if end > last_whole_end:
        out.append(Segment("d", last_whole_end + timedelta(days=1), end))
    return out


def year_segments(months: Segment) -> list[Segment]:
    """A run of whole months (``m``, first days of its first and last months) as whole
    calendar years (``y``, first days of its first and last years) and the months at the ends."""
    first_year = months.start.year + (months.start.month != 1)
    last_year = months.end.year - (months.end.month != 12)
    if first_year > last_year:
        return [months]
    out = [Segment("y", date(first_year, 1, 1), date(last_year, 1, 1))]
    if months.start.year < first_year:
        out.append(Segment("m", months.start, date(first_year - 1, 12, 1)))
    if months.end.year > last_year:
        out.append(Segment("m", date(last_year + 1, 1, 1), months.end))
    return out


def _grains_clause(table: sa.Table, parts: Sequence[Segment]) -> sa.ColumnElement[bool]:
    return sa.or_(
        *(sa.and_(table.c.grain == s.grain, table.c.period.between(s.start, s.end)) for s in parts)
    )


def _period_clause(table: sa.Table, query: Query) -> sa.ColumnElement[bool]:
    parts = [
        sa.and_(table.c.grain == s.grain, table.c.period.between(s.start, s.end))
        for s in segments(query.start, query.end)
    ]
    return sa.or_(*parts) if parts else sa.false()


def _like(value: str) -> str:
    return f"%|{value}|%"


def _filters(table: sa.Table, query: Query) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if query.province is not None:
        clauses.append(table.c.province == query.province)
    if query.team is not None:
        clauses.append(table.c.teams.like(_like(query.team)))
    if query.offence is not None:
        clauses.append(table.c.offences.like(_like(query.offence)))
    return clauses


def _sums() -> list[Any]:
    # Cast back to BIGINT: PostgreSQL sums BIGINT as NUMERIC, which arrives as Decimal objects.
    return [sa.cast(sa.func.sum(rollup.c[c]), sa.BigInteger) for c in METRIC_COLUMNS]


async def read_cells(session: AsyncSession, query: Query) -> list[Cell]:
    stmt = (
        sa.select(
            rollup.c.province,
            rollup.c.teams,
            rollup.c.offences,
            *_sums(),
        )
        .where(_period_clause(rollup, query), *_filters(rollup, query))
        .group_by(rollup.c.province, rollup.c.teams, rollup.c.offences)
    )
    cells = []
    for row in await session.execute(stmt):
        counts = [int(v or 0) for v in row[3:]]
        if any(counts):  # rows a case moved out of (e.g. to its province) stay, at zero
            cells.append(Cell(row[0], row[1], row[2], counts))
    return cells


async def read_months(session: AsyncSession, query: Query) -> dict[date, list[int]]:
    """Counts per calendar month of the period (edge months partly, from daily rows)."""
    stmt = (
        sa.select(rollup.c.period, *_sums())
        .where(_period_clause(rollup, query), *_filters(rollup, query))
        .group_by(rollup.c.period)
    )
    months: dict[date, list[int]] = {}
    day = month_of(query.start)
    while day <= query.end:
        months[day] = [0] * len(METRICS)
        day = month_of(day + timedelta(days=32))
    for row in await session.execute(stmt):
        period = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0]))
        target = months.setdefault(month_of(period), [0] * len(METRICS))
        for i, v in enumerate(row[1:]):
            target[i] += int(v or 0)
    return months


def _codes_join(table: sa.Table, column: str, codes: Sequence[str]) -> tuple[Any, Any]:
    """A derived table of ``codes`` joined to ``table`` on set membership ('' = empty set)."""
    selects = [sa.select(sa.literal(code, sa.String()).label("code")) for code in codes]
    derived = (selects[0] if len(selects) == 1 else sa.union_all(*selects)).subquery("codes")
    col = table.c[column]
    on = sa.or_(
        sa.and_(derived.c.code == "", col == ""),
        sa.and_(derived.c.code != "", col.like(sa.literal("%|") + derived.c.code + "|%")),
    )
    return derived, on


def _group_expr(table: sa.Table, dimension: str, codes: Sequence[str]) -> tuple[Any, Any, Any]:
    """(group expression, from clause, join condition) for one breakdown."""
    if dimension == "total":
        return sa.literal("", sa.String()), table, None
    if dimension == "province":
        return table.c.province, table, None
    derived, on = _codes_join(table, "teams" if dimension == "team" else "offences", codes)
    return derived.c.code, table.join(derived, on), on


async def read_medians(
    session: AsyncSession, query: Query, dimension: str, codes: Sequence[str] = ()
) -> dict[str, dict[str, Median]]:
    """Exact medians per group of ``dimension`` (``total``, ``province``, ``team``, ``offence``)
    from the duration histograms, computed in SQL with window sums."""
    if dimension in ("team", "offence") and not codes:
        return {}
    group, source, _ = _group_expr(duration, dimension, codes)
    hist = (
        sa.select(
            group.label("g"),
            duration.c.measure,
            duration.c.value,
            sa.func.sum(duration.c.n).label("n"),
        )
        .select_from(source)
        .where(_period_clause(duration, query), *_filters(duration, query))
        .group_by(group, duration.c.measure, duration.c.value)
        .cte("hist")
    )
    window = (
        sa.select(
            hist.c.g,
            hist.c.measure,
            hist.c.value,
            sa.cast(
                sa.func.sum(hist.c.n).over(
                    partition_by=(hist.c.g, hist.c.measure),
                    order_by=hist.c.value,
                    rows=(None, 0),
                ),
                sa.BigInteger,
            ).label("cum"),
            sa.cast(
                sa.func.sum(hist.c.n).over(partition_by=(hist.c.g, hist.c.measure)), sa.BigInteger
            ).label("total"),
        )
    ).cte("win")
    lo_pos = (window.c.total + 1) // 2
    hi_pos = window.c.total // 2 + 1
    stmt = sa.select(
        window.c.g,
        window.c.measure,
        sa.func.min(sa.case((window.c.cum >= lo_pos, window.c.value))),
        sa.func.min(sa.case((window.c.cum >= hi_pos, window.c.value))),
        sa.func.max(window.c.total),
    ).group_by(window.c.g, window.c.measure)
    out: dict[str, dict[str, Median]] = {}
    for g, measure, lo, hi, total in await session.execute(stmt):
        if measure in MEASURES and lo is not None and hi is not None:
            out.setdefault(g, {})[measure] = ((int(lo) + int(hi)) / 2, int(total))
    return out


async def read_distinct(
    session: AsyncSession, query: Query, dimension: str, codes: Sequence[str] = ()
) -> dict[str, int]:
    """Distinct children given legal representation per group of ``dimension``."""
    if dimension in ("team", "offence") and not codes:
        return {}
    group, source, _ = _group_expr(distinct, dimension, codes)
    stmt = (
        sa.select(group, sa.func.count(sa.distinct(distinct.c.subject_id)))
        .select_from(source)
        .where(
            distinct.c.metric == "children_legal_representation",
            distinct.c.day.between(query.start, query.end),
            *_filters(distinct, query),
        )
        .group_by(group)
    )
    return {g: int(n) for g, n in await session.execute(stmt)}


async def read_report(
    session: AsyncSession, query: Query, *, with_months: bool = False
) -> ReportData:
    """Every set-keyed cell of the period, grouped afterwards: slow on a large store (it scans
    every cell), kept as the reference :func:`read_figures` is tested against."""
    cells = await read_cells(session, query)
    team_codes = sorted({m for c in cells for m in set_members(c.teams) or [""]})
    offence_codes = sorted({m for c in cells for m in set_members(c.offences) or [""]})
    data = ReportData(cells=cells)
    codes = {"total": (), "province": (), "team": team_codes, "offence": offence_codes}
    for dimension, dimension_codes in codes.items():
        data.medians[dimension] = await read_medians(session, query, dimension, dimension_codes)
        data.children[dimension] = await read_distinct(session, query, dimension, dimension_codes)
    # Children may have been represented in a cell that has no count in the period.
    if with_months:
        data.months = await read_months(session, query)
    return data


# ------------------------------------------------------------------- reading, the fast way

DIMENSIONS = ("total", "province", "team", "offence")
_SET_COLUMN = {"team": "teams", "offence": "offences"}
Histograms = dict[str, dict[str, dict[str, dict[int, int]]]]  # dimension -> key -> measure -> h


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _cube_cumulate(groups: dict[str, list[int]], key: str, values: Sequence[Any]) -> None:
    target = groups.get(key)
    if target is None:
        target = groups[key] = [0] * len(METRICS)
    for i, v in enumerate(values):
        if v:
            target[i] += int(v)


def _keys_of(dimension: str, province: str, teams: str, offences: str) -> list[str]:
    if dimension == "total":
        return [""]
    if dimension == "province":
        return [province]
    return set_members(teams if dimension == "team" else offences) or [""]


def _per_dimension(rows: Any, summed: Sequence[str], by: Sequence[str] = ()) -> Any:
    """PostgreSQL: the sums of the columns ``summed`` of ``rows`` (set-keyed), grouped per
    value of each dimension as :func:`_keys_of` expands them (a row under each member of its
    team and offence sets, ``""`` for an empty set) and by the columns ``by``: rows of
    (dimension, key, *by, *sums)."""

    def sums(source: Any) -> list[Any]:
        return [sa.cast(sa.func.sum(source.c[c]), sa.BigInteger) for c in summed]

    extra = [rows.c[c] for c in by]
    parts = [
        sa.select(sa.literal("total"), sa.literal("", sa.String()), *extra, *sums(rows))
        .group_by(*extra)
        .having(sa.func.count() > 0),
        sa.select(sa.literal("province"), rows.c.province, *extra, *sums(rows)).group_by(
            rows.c.province, *extra
        ),
    ]
    for dimension, column in (("team", "teams"), ("offence", "offences")):
        value = rows.c[column]
        split = sa.func.string_to_array(sa.func.btrim(value, "|"), "|")
        empty = sa.func.string_to_array("", "|")  # not a one-element array: array['']
        codes = sa.case((value == "", sa.func.array_append(empty, "")), else_=split)
        # Each row repeated once per member of its set.
        per_member = sa.select(rows, sa.func.unnest(codes).label("code")).subquery()
        member_by = [per_member.c[c] for c in by]
        parts.append(
            sa.select(
                sa.literal(dimension), per_member.c.code, *member_by, *sums(per_member)
            ).group_by(per_member.c.code, *member_by)
        )
    return sa.union_all(*parts)


class _Reader:
    """One summary's reads: whole months from the cube, the rest from the set-keyed rows."""

    def __init__(self, session: AsyncSession, query: Query) -> None:
        self.session = session
        self.query = query
        self.province = query.province or ALL
        self.team = query.team or ALL
        self.offence = query.offence or ALL
        self.groups: dict[str, dict[str, list[int]]] = {d: {} for d in DIMENSIONS}
        self.histograms: Histograms = {d: {} for d in DIMENSIONS}
        self.months: dict[date, list[int]] = {}

    def _hist(self, dimension: str, key: str, measure: str, value: int, n: int) -> None:
        by_measure = self.histograms[dimension].setdefault(key, {})
        histogram = by_measure.setdefault(measure, {})
        histogram[value] = histogram.get(value, 0) + n

    def _cube_slices(self, table: sa.Table) -> list[tuple[str, Any, list[Any]]]:
        """(dimension, group column or None, where) of each cube read. A breakdown by the
        dimension a query filters on is not in the cube (it needs pairs of members)."""
        c = table.c
        slices: list[tuple[str, Any, list[Any]]] = [
            (
                "total",
                None,
                [c.province == self.province, c.team == self.team, c.offence == self.offence],
            ),
        ]
        if self.query.province is None:
            slices.append(
                (
                    "province",
                    c.province,
                    [c.province != ALL, c.team == self.team, c.offence == self.offence],
                )
            )
        if self.query.team is None:
            slices.append(
                (
                    "team",
                    c.team,
                    [c.province == self.province, c.team != ALL, c.offence == self.offence],
                )
            )
        if self.query.offence is None:
            slices.append(
                (
                    "offence",
                    c.offence,
                    [c.province == self.province, c.team == self.team, c.offence != ALL],
                )
            )
        return slices

    async def months_from_cube(self, segment: Segment) -> None:
        """Whole months: the total per month from monthly rows (it is also the monthly
        series), breakdowns and histograms from yearly rows and the months at either end."""
        parts = year_segments(segment)
        for dimension, column, where in self._cube_slices(cube):
            if column is None:
                monthly = sa.and_(
                    cube.c.grain == "m", cube.c.period.between(segment.start, segment.end)
                )
                stmt = sa.select(cube.c.period, *(cube.c[m] for m in METRIC_COLUMNS)).where(
                    monthly, *where
                )
                for row in await self.session.execute(stmt):
                    _cube_cumulate(self.groups["total"], "", row[1:])
                    _cube_cumulate(self.months, _date(row[0]), row[1:])  # type: ignore[arg-type]
                continue
            stmt = (
                sa.select(column, *(sa.func.sum(cube.c[m]) for m in METRIC_COLUMNS))
                .where(_grains_clause(cube, parts), *where)
                .group_by(column)
            )
            for row in await self.session.execute(stmt):
                _cube_cumulate(self.groups[dimension], row[0], row[1:])
        d = cube_duration
        for dimension, column, where in self._cube_slices(d):
            group = column if column is not None else sa.literal("", sa.String())
            stmt = (
                sa.select(group, d.c.measure, d.c.value, sa.func.sum(d.c.n))
                .where(_grains_clause(d, parts), *where)
                .group_by(group, d.c.measure, d.c.value)
            )
            for key, measure, value, n in await self.session.execute(stmt):
                self._hist(dimension, key, measure, int(value), int(n))

    async def pairs_from_rollup(self, segment: Segment, dimension: str) -> None:
        """A breakdown by the dimension the query filters on (e.g. by team, of the cases
        of team HIT: HIT and the teams it worked with), from the set-keyed monthly rows."""
        column = _SET_COLUMN[dimension]
        period = sa.and_(rollup.c.grain == "m", rollup.c.period.between(segment.start, segment.end))
        stmt = (
            sa.select(rollup.c[column], *_sums())
            .where(period, *_filters(rollup, self.query))
            .group_by(rollup.c[column])
        )
        for row in await self.session.execute(stmt):
            for key in set_members(row[0]) or [""]:
                _cube_cumulate(self.groups[dimension], key, row[1:])
        d = duration
        period = sa.and_(d.c.grain == "m", d.c.period.between(segment.start, segment.end))
        hist = (
            sa.select(d.c[column], d.c.measure, d.c.value, sa.func.sum(d.c.n))
            .where(period, *_filters(d, self.query))
            .group_by(d.c[column], d.c.measure, d.c.value)
        )
        for members, measure, value, n in await self.session.execute(hist):
            for key in set_members(members) or [""]:
                self._hist(dimension, key, measure, int(value), int(n))

    async def days_from_margins(self, segments: Sequence[Segment]) -> None:
        """The days at either end of an unfiltered summary's period: counts from the daily
        margins by equality, the duration histograms from the daily set-keyed rows."""
        c = cube_day.c
        period = sa.or_(*(c.period.between(s.start, s.end) for s in segments))
        values = [c[m] for m in METRIC_COLUMNS]
        total = sa.select(c.period, *values).where(
            period, c.province == ALL, c.team == ALL, c.offence == ALL
        )
        for row in await self.session.execute(total):
            _cube_cumulate(self.groups["total"], "", row[1:])
            _cube_cumulate(self.months, month_of(_date(row[0])), row[1:])  # type: ignore[arg-type]
        for dimension, column, where in self._cube_slices(cube_day)[1:]:
            stmt = (
                sa.select(column, *(sa.func.sum(v) for v in values))
                .where(period, *where)
                .group_by(column)
            )
            for row in await self.session.execute(stmt):
                _cube_cumulate(self.groups[dimension], row[0], row[1:])
        await self.durations_of_days(segments)

    async def days_from_rollup(self, segments: Sequence[Segment]) -> None:
        """The days at either end of the period, from the daily set-keyed rows."""
        clause = sa.or_(
            *(
                sa.and_(rollup.c.grain == "d", rollup.c.period.between(s.start, s.end))
                for s in segments
            )
        )
        filters = _filters(rollup, self.query)
        postgres = _dialect(self.session) == "postgresql"
        if postgres:
            # Grouped per dimension in PostgreSQL: a few rows back instead of every cell.
            cells = sa.select(rollup).where(clause, *filters).cte("cells")
            for dimension, key, *values in await self.session.execute(
                _per_dimension(cells, METRIC_COLUMNS)
            ):
                _cube_cumulate(self.groups[dimension], key, values)
        else:
            stmt = (
                sa.select(rollup.c.province, rollup.c.teams, rollup.c.offences, *_sums())
                .where(clause, *filters)
                .group_by(rollup.c.province, rollup.c.teams, rollup.c.offences)
            )
            for row in await self.session.execute(stmt):
                for dimension in DIMENSIONS:
                    for key in _keys_of(dimension, row[0], row[1], row[2]):
                        _cube_cumulate(self.groups[dimension], key, row[3:])
        by_day = (
            sa.select(rollup.c.period, *_sums()).where(clause, *filters).group_by(rollup.c.period)
        )
        for row in await self.session.execute(by_day):
            _cube_cumulate(self.months, month_of(_date(row[0])), row[1:])  # type: ignore[arg-type]
        await self.durations_of_days(segments)

    async def durations_of_days(self, segments: Sequence[Segment]) -> None:
        """The duration histograms of the days at either end, from the daily set-keyed rows."""
        d = duration
        clause = sa.or_(
            *(sa.and_(d.c.grain == "d", d.c.period.between(s.start, s.end)) for s in segments)
        )
        if _dialect(self.session) == "postgresql":
            observed = sa.select(d).where(clause, *_filters(d, self.query)).cte("observed")
            stmt = _per_dimension(observed, ["n"], ("measure", "value"))
            for dimension, key, measure, value, n in await self.session.execute(stmt):
                self._hist(dimension, key, measure, int(value), int(n))
            return
        hist = (
            sa.select(
                d.c.province, d.c.teams, d.c.offences, d.c.measure, d.c.value, sa.func.sum(d.c.n)
            )
            .where(clause, *_filters(d, self.query))
            .group_by(d.c.province, d.c.teams, d.c.offences, d.c.measure, d.c.value)
        )
        for province, teams, offences, measure, value, n in await self.session.execute(hist):
            for dimension in DIMENSIONS:
                for key in _keys_of(dimension, province, teams, offences):
                    self._hist(dimension, key, measure, int(value), int(n))

    async def children(self) -> dict[str, dict[str, int]]:
        """Distinct children given legal representation, per value of every dimension, from
        the distinct-children cube: per slice, the rows of the period's days, months and years
        whose child's previous day is before the period. A breakdown by the very team or
        offence the query filters on is not in the cube: it counts the filtered rows."""
        query = self.query
        parts: list[Segment] = []
        for segment in segments(query.start, query.end):
            parts.extend(year_segments(segment) if segment.grain == "m" else [segment])
        out: dict[str, dict[str, int]] = {d: {} for d in DIMENSIONS}
        if not parts:
            return out
        t = cube_distinct
        for dimension, column, where in self._cube_slices(t):
            group = column if column is not None else sa.literal("", sa.String())
            stmt = (
                sa.select(group, sa.cast(sa.func.sum(t.c.n), sa.BigInteger))
                .where(
                    t.c.metric == "children_legal_representation",
                    _grains_clause(t, parts),
                    t.c.prev < query.start,
                    *where,
                )
                .group_by(group)
            )
            for key, n in await self.session.execute(stmt):
                if n:
                    out[dimension][key] = int(n)
        if query.province is not None and "" in out["total"]:
            out["province"] = {query.province: out["total"][""]}
        filtered = [d for d in ("team", "offence") if getattr(query, d) is not None]
        if filtered:
            counted = await self._children_of_rows(filtered)
            for dimension in filtered:
                out[dimension] = counted[dimension]
        return out

    async def _children_of_rows(self, dimensions: Sequence[str]) -> dict[str, dict[str, int]]:
        """Distinct children per value of the set dimensions ``dimensions`` (team, offence)
        from the filtered ``rpt_distinct`` rows: counted in PostgreSQL, or here from one read."""
        if _dialect(self.session) == "postgresql":
            return await self._children_counted(dimensions)
        stmt = (
            sa.select(
                distinct.c.subject_id, distinct.c.province, distinct.c.teams, distinct.c.offences
            )
            .where(*self._children_where())
            .distinct()
        )
        seen: dict[str, dict[str, set[str]]] = {d: {} for d in DIMENSIONS}
        for subject, province, teams, offences in await self.session.execute(stmt):
            for dimension in DIMENSIONS:
                for key in _keys_of(dimension, province, teams, offences):
                    seen[dimension].setdefault(key, set()).add(subject)
        return {d: {k: len(v) for k, v in seen[d].items()} for d in DIMENSIONS}

    def _children_where(self) -> list[Any]:
        return [
            distinct.c.metric == "children_legal_representation",
            distinct.c.day.between(self.query.start, self.query.end),
            *_filters(distinct, self.query),
        ]

    async def _children_counted(self, dimensions: Sequence[str]) -> dict[str, dict[str, int]]:
        rows = (
            sa.select(
                distinct.c.subject_id, distinct.c.province, distinct.c.teams, distinct.c.offences
            )
            .where(*self._children_where())
            .cte("rows")
        )

        def members(column: Any) -> Any:
            # '|A|B|' -> rows A and B; '' (no team, no offence) -> one row '', as set_members.
            split = sa.func.string_to_array(sa.func.btrim(column, "|"), "|")
            empty = sa.func.string_to_array("", "|")  # not a one-element array: array['']
            codes = sa.case((column == "", sa.func.array_append(empty, "")), else_=split)
            return sa.select(rows.c.subject_id, sa.func.unnest(codes).label("code")).subquery()

        parts = []
        for dimension in dimensions:
            per_member = members(rows.c[_SET_COLUMN[dimension]])
            parts.append(
                sa.select(
                    sa.literal(dimension),
                    per_member.c.code,
                    sa.func.count(sa.distinct(per_member.c.subject_id)),
                ).group_by(per_member.c.code)
            )
        stmt = parts[0] if len(parts) == 1 else sa.union_all(*parts)
        out: dict[str, dict[str, int]] = {d: {} for d in DIMENSIONS}
        for dimension, key, n in await self.session.execute(stmt):
            out[dimension][key] = int(n)
        return out


async def read_figures(
    session: AsyncSession, query: Query, *, with_months: bool = False
) -> ReportData:
    """What the summary of ``query`` needs, read mostly from the cube: the same figures as
    :func:`read_report`, grouped per dimension instead of as set-keyed cells."""
    if _dialect(session) == "postgresql":
        # These reads take milliseconds; PostgreSQL's JIT, which their estimated costs can
        # trigger, spent over a second compiling one of them (EXPLAIN ANALYZE, 1M cases).
        await session.execute(sa.text("SET LOCAL jit = off"))
    reader = _Reader(session, query)
    all_segments = segments(query.start, query.end)
    days = [s for s in all_segments if s.grain == "d"]
    for segment in all_segments:
        if segment.grain != "m":
            continue
        await reader.months_from_cube(segment)
        for dimension in ("team", "offence"):
            if getattr(query, dimension) is not None:
                await reader.pairs_from_rollup(segment, dimension)
    if days:
        if query.province is None and query.team is None and query.offence is None:
            await reader.days_from_margins(days)
        else:
            await reader.days_from_rollup(days)
    if query.province is not None:
        # Filtered to one province, the breakdown by province is its total.
        reader.groups["province"] = {}
        reader.histograms["province"] = {}
        if "" in reader.groups["total"]:
            reader.groups["province"][query.province] = reader.groups["total"][""]
        if "" in reader.histograms["total"]:
            reader.histograms["province"][query.province] = reader.histograms["total"][""]
    groups = {
        dimension: {k: v for k, v in by_key.items() if any(v)}
        for dimension, by_key in reader.groups.items()
    }
    data = ReportData(cells=[], groups=groups)
    data.medians = {
        dimension: {
            key: {m: median_of(h) for m, h in by_measure.items() if m in MEASURES}
            for key, by_measure in by_key.items()
        }
        for dimension, by_key in reader.histograms.items()
    }
    children = await reader.children()
    data.children = {d: children.get(d, {}) for d in DIMENSIONS}
    if with_months:
        months: dict[date, list[int]] = {}
        day = month_of(query.start)
        while day <= query.end:
            months[day] = reader.months.get(day, [0] * len(METRICS))
            day = month_of(day + timedelta(days=32))
        data.months = months
    return data


# ---------------------------------------------------------------------------- rebuild


async def replace_all(
    session: AsyncSession,
    facts: Iterable[dict[str, Any]],
    rows: RollupRows,
) -> None:
    """Empty the projection and fill it anew, inside the caller's transaction (which holds the
    write lock): readers see the old figures or the new ones, never a mix or a double count."""
    postgres = _dialect(session) == "postgresql"
    tables = [aggregate, rollup, duration, distinct, cube, cube_duration, cube_distinct, cube_day]
    if postgres:
        await session.execute(sa.text("TRUNCATE " + ", ".join(t.name for t in tables)))
    else:
        for table in tables:
            await session.execute(sa.delete(table))
    count_records = [(*key, *counts) for key, counts in sorted(rows.counts.items()) if any(counts)]
    duration_records = [(*key, n) for key, n in sorted(rows.durations.items()) if n]
    distinct_records = sorted(rows.distincts)
    fact_records = [(f["kind"], f["aggregate_id"], f["facts"]) for f in facts]
    cube_counts, cube_durations = rows.cube()
    cube_records = [(*key, *counts) for key, counts in sorted(cube_counts.items()) if any(counts)]
    cube_duration_records = [(*key, n) for key, n in sorted(cube_durations.items()) if n]
    children_records = [(*key, n) for key, n in sorted(rows.children().items()) if n]
    day_records = [(*key, *counts) for key, counts in sorted(rows.days().items()) if any(counts)]
    batches: list[tuple[sa.Table, Sequence[str], list[tuple[Any, ...]]]] = [
        (aggregate, ("kind", "aggregate_id", "facts"), fact_records),
        (rollup, (*ROLLUP_KEY, *METRIC_COLUMNS), count_records),
        (duration, (*DURATION_KEY, "n"), duration_records),
        (distinct, DISTINCT_COLUMNS, distinct_records),  # type: ignore[list-item]
        (cube, (*CUBE_KEY, *METRIC_COLUMNS), cube_records),
        (cube_duration, (*CUBE_DURATION_KEY, "n"), cube_duration_records),
        (cube_distinct, (*CUBE_DISTINCT_KEY, "n"), children_records),
        (cube_day, (*CUBE_DAY_KEY, *METRIC_COLUMNS), day_records),
    ]
    if postgres:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        for table, columns, records in batches:
            if records:
                await driver.copy_records_to_table(  # type: ignore[union-attr]
                    table.name, records=records, columns=list(columns)
                )
        return
    for table, columns, records in batches:
        for start in range(0, len(records), 5000):
            chunk = records[start : start + 5000]
            await session.execute(
                sa.insert(table), [dict(zip(columns, r, strict=True)) for r in chunk]
            )
