"""The cube read path (``read_figures``, what the summary serves) gives exactly the documents of
the set-keyed reference path (``read_report``), on SQLite and PostgreSQL, whether the figures
were written by the live consumers' deltas or by a rebuild's bulk load: every period shape
(whole months, mid-month ends, days only) and every filter, suppression included."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from cpu_reporting.adapters.store import (
    DISTINCT_COLUMNS,
    DURATION_KEY,
    METRIC_COLUMNS,
    ROLLUP_KEY,
    RollupRows,
    apply_delta,
    facts_row,
    read_figures,
    read_report,
    replace_all,
    save_facts,
)
from cpu_reporting.adapters.tables import cube_day, cube_distinct, distinct, duration, rollup
from cpu_reporting.domain.contributions import (
    METRIC_INDEX,
    METRICS,
    Delta,
    contribute,
    contribution,
)
from cpu_reporting.domain.facts import CaseFacts, Opening, Outcome, TipFacts
from cpu_reporting.domain.report import Query, build_summary
from cpu_reporting.domain.suppression import Suppression
from cpu_shared.db import alembic_config, apply_migrations, create_engine, session_factory

pytestmark = pytest.mark.integration

TEAMS = [(), ("OVCS",), ("HIT",), ("OVCS", "HIT"), ("FST", "OVCS", "HIT")]
OFFENCES = ["CC-2009-art-239", "CC-2009-art-240", "LSHTSE-2008-art-15", "CC-art-246"]
SERVICES = ["legal_representation", "medical_care", "shelter"]
START = date(2023, 1, 1)


def random_facts(rng: random.Random, cases: int) -> list[CaseFacts | TipFacts]:
    out: list[CaseFacts | TipFacts] = []
    for i in range(cases):
        opened_on = START + timedelta(days=rng.randrange(600))
        c = CaseFacts(f"cube-case-{i}")
        c.opening = Opening(
            opened_on=opened_on,
            referral_received_at=datetime(2022, 12, 1, tzinfo=UTC)
            + timedelta(days=(opened_on - date(2022, 12, 1)).days - rng.randrange(0, 5)),
            province=rng.choice(["01", "12", "17", "25", ""]),
            concerns=("homicide",) if rng.random() < 0.1 else ("rape",),
            teams=rng.choice(TEAMS),
            children_under_15=rng.randrange(0, 2),
            version=1,
            event_id="e",
        )
        for s in range(rng.randrange(0, 3)):
            arrested = opened_on + timedelta(days=rng.randrange(0, 90))
            c.arrests[f"s{s}"] = arrested
            if rng.random() < 0.7:
                codes = set(rng.sample(OFFENCES, rng.choice((1, 1, 2))))
                c.charged_on[f"s{s}"] = arrested + timedelta(days=3)
                c.charge_codes[f"s{s}"] = codes
                if rng.random() < 0.6:
                    c.outcomes[f"s{s}"] = Outcome(
                        decided_on=arrested + timedelta(days=rng.randrange(20, 200)),
                        convicted=rng.random() < 0.8,
                        sentence_months=rng.randrange(6, 200),
                        offences=tuple(sorted(codes)),
                        version=3,
                        event_id="o",
                    )
        for k in range(rng.randrange(0, 3)):
            # A few children shared between cases, so distinct counting matters.
            child = f"child-{rng.randrange(cases // 2)}"
            c.services.add((child, rng.choice(SERVICES), opened_on + timedelta(days=k * 9)))
        for k in range(rng.randrange(0, 3)):
            c.evidence[f"item{k}"] = opened_on + timedelta(days=k)
        if rng.random() < 0.3:
            c.first_contacts["child"] = datetime.combine(
                opened_on, datetime.min.time(), tzinfo=UTC
            ) + timedelta(hours=rng.randrange(0, 90))
        out.append(c)
    for i in range(cases // 5):
        t = TipFacts(f"cube-tip-{i}")
        t.received_on = START + timedelta(days=rng.randrange(600))
        t.province = (1, "e", rng.choice(["01", "12"]))
        if rng.random() < 0.4:
            t.escalated_on = t.actioned_on = t.received_on + timedelta(days=2)
        out.append(t)
    return out


QUERIES = [
    Query(date(2023, 1, 1), date(2023, 12, 31)),
    Query(date(2023, 1, 1), date(2024, 8, 31)),
    Query(date(2022, 11, 1), date(2024, 12, 31)),  # months, then a whole year from yearly rows
    Query(date(2022, 12, 20), date(2024, 3, 10), team="HIT"),
    Query(date(2023, 3, 17), date(2024, 2, 11)),
    Query(date(2023, 5, 3), date(2023, 5, 20)),
    Query(date(2023, 4, 1), date(2023, 6, 14)),
    Query(date(2023, 1, 1), date(2023, 12, 31), province="12"),
    Query(date(2023, 1, 1), date(2023, 12, 31), team="HIT"),
    Query(date(2023, 1, 1), date(2023, 12, 31), offence="CC-2009-art-239"),
    Query(date(2023, 2, 10), date(2024, 3, 31), team="OVCS", offence="CC-2009-art-240"),
    Query(date(2023, 1, 1), date(2024, 6, 30), province="17", team="FST"),
    Query(date(2023, 2, 14), date(2023, 11, 3), province="12", offence="LSHTSE-2008-art-15"),
    # Distinct children: a mid-month start, months, then a whole year from yearly rows.
    Query(date(2023, 7, 12), date(2024, 12, 31)),
    Query(date(2023, 7, 1), date(2024, 12, 31), province="01"),
    Query(date(2023, 9, 30), date(2023, 10, 1)),
]


def published(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "as_of"}


async def load_incrementally(url: str, facts: list[CaseFacts | TipFacts]) -> None:
    """As the live consumers write: per aggregate, the delta of its figures, in batches."""
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        for start in range(0, len(facts), 50):
            delta = Delta()
            batch = facts[start : start + 50]
            for f in batch:
                delta.add(contribution(None), contribution(f))
            async with sessions() as session, session.begin():
                await save_facts(
                    session,
                    {("case" if isinstance(f, CaseFacts) else "tip", _id(f)): f for f in batch},
                )
                await apply_delta(session, delta)
    finally:
        await engine.dispose()


def _id(f: CaseFacts | TipFacts) -> str:
    return f.case_id if isinstance(f, CaseFacts) else f.tip_id


async def load_by_rebuild(url: str, facts: list[CaseFacts | TipFacts]) -> None:
    rows = RollupRows()
    for f in facts:
        contribute(f, rows)
    fact_rows = [facts_row("case" if isinstance(f, CaseFacts) else "tip", f) for f in facts]
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await replace_all(session, fact_rows, rows)
    finally:
        await engine.dispose()


async def assert_same_documents(url: str) -> int:
    engine = create_engine(url)
    compared = 0
    try:
        sessions = session_factory(engine)
        for query in QUERIES:
            for threshold in (2, 5):
                suppression = Suppression(threshold)
                async with sessions() as session:
                    fast = await read_figures(session, query, with_months=True)
                    reference = await read_report(session, query, with_months=True)
                fast_doc = published(build_summary(fast, query, suppression))
                reference_doc = published(build_summary(reference, query, suppression))
                assert fast_doc == reference_doc, query
                assert fast.months == reference.months, query
                compared += 1
        # Not vacuous: the data has the shapes the cube must get right.
        async with sessions() as session:
            year = await read_figures(session, QUERIES[1])
        assert len(year.groups["offence"]) >= 4 and len(year.groups["team"]) >= 3
        assert year.children["total"][""] > 10
        assert year.medians["offence"]["CC-2009-art-239"]["referral_to_arrest_days"][1] > 5
    finally:
        await engine.dispose()
    return compared


@pytest.mark.parametrize("load", [load_incrementally, load_by_rebuild])
async def test_cube_matches_the_set_keyed_rows_on_postgresql(
    make_database: Callable[[str], str], load: Any
) -> None:
    url = make_database("reporting")
    await apply_migrations("cpu_reporting.migrations", url)
    await load(url, random_facts(random.Random(9), 400))
    assert await assert_same_documents(url) == 2 * len(QUERIES)


@pytest.mark.parametrize("load", [load_incrementally, load_by_rebuild])
async def test_cube_matches_the_set_keyed_rows_on_sqlite(tmp_path: Path, load: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    await apply_migrations("cpu_reporting.migrations", url)
    await load(url, random_facts(random.Random(11), 300))
    assert await assert_same_documents(url) == 2 * len(QUERIES)


async def test_a_case_that_moves_leaves_nothing_behind_in_the_cube(
    make_database: Callable[[str], str],
) -> None:
    """A case later charged (its offence set changes) moves out of its old cube rows."""
    url = make_database("reporting")
    await apply_migrations("cpu_reporting.migrations", url)
    facts = random_facts(random.Random(5), 60)
    await load_incrementally(url, facts)
    moved = [f for f in facts if isinstance(f, CaseFacts) and f.opening and not f.charge_codes]
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        delta = Delta()
        for c in moved:
            before = contribution(c)
            c.arrests.setdefault("late", c.opening.opened_on)  # type: ignore[union-attr]
            c.charged_on["late"] = c.opening.opened_on  # type: ignore[union-attr]
            c.charge_codes["late"] = {"CC-art-246"}
            delta.add(before, contribution(c))
        async with sessions() as session, session.begin():
            await apply_delta(session, delta)
        query = Query(date(2023, 1, 1), date(2024, 12, 31))
        async with sessions() as session:
            fast = await read_figures(session, query)
        none = fast.groups["offence"].get("", [0] * len(METRICS))
        investigations = none[METRIC_INDEX["investigations"]]
        assert fast.groups["offence"]["CC-art-246"][METRIC_INDEX["investigations"]] >= len(moved)
    finally:
        await engine.dispose()
    # Every case now has an offence; "none" keeps only the cases with none that never moved.
    assert investigations == 0
    assert await assert_same_documents_quick(url)


async def assert_same_documents_quick(url: str) -> bool:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            query = Query(date(2023, 1, 1), date(2024, 12, 31))
            fast = build_summary(await read_figures(session, query), query, Suppression(2))
            ref = build_summary(await read_report(session, query), query, Suppression(2))
        return published(fast) == published(ref)
    finally:
        await engine.dispose()


async def load_before_the_cube(url: str, facts: list[CaseFacts | TipFacts]) -> None:
    """Figures as a store at revision 0003 holds them: set-keyed rows, no cube yet."""
    rows = RollupRows()
    for f in facts:
        contribute(f, rows)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            counts = [
                dict(zip(ROLLUP_KEY, key, strict=True))
                | dict(zip(METRIC_COLUMNS, values, strict=True))
                for key, values in rows.counts.items()
            ]
            await conn.execute(sa.insert(rollup), counts)
            durations = [
                dict(zip(DURATION_KEY, key, strict=True)) | {"n": n}
                for key, n in rows.durations.items()
            ]
            await conn.execute(sa.insert(duration), durations)
            children = [dict(zip(DISTINCT_COLUMNS, row, strict=True)) for row in rows.distincts]
            await conn.execute(sa.insert(distinct), children)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_migration_fills_the_cube_from_the_rows_held(
    backend: str, tmp_path: Path, make_database: Callable[[str], str]
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
        if backend == "sqlite"
        else make_database("reporting")
    )
    config = alembic_config("cpu_reporting.migrations", url)
    await asyncio.to_thread(command.upgrade, config, "reporting_0003")
    facts = random_facts(random.Random(3), 250)
    await load_before_the_cube(url, facts)
    await apply_migrations("cpu_reporting.migrations", url)
    assert await assert_same_documents(url) == 2 * len(QUERIES)
    # 0005 filled the distinct-children cube with what a rebuild writes, row for row.
    rows = RollupRows()
    for f in facts:
        contribute(f, rows)
    expected = {key: n for key, n in rows.children().items() if n}
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            held = {
                (m, p, t, o, g, _day(period), _day(prev)): int(n)
                for m, p, t, o, g, period, prev, n in await conn.execute(sa.select(cube_distinct))
            }
    finally:
        await engine.dispose()
    assert held == expected and len(held) > 100
    # 0006 filled the daily margins with what a rebuild writes, row for row.
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            days = {
                (p, t, o, _day(period)): list(values)
                for p, t, o, period, *values in await conn.execute(sa.select(cube_day))
            }
    finally:
        await engine.dispose()
    assert days == {k: v for k, v in rows.days().items() if any(v)} and len(days) > 100


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
