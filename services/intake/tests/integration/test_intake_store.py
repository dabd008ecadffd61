"""The intake store on real PostgreSQL (and SQLite, what `make up` runs): encryption at rest,
the yearly reference counter under concurrency, matching on digests only, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import cpu_intake.adapters.tables  # noqa: F401  (registers the tables)
from cpu_intake.adapters.repository import ReferralRepository, as_candidate_children
from cpu_intake.domain.matching import CandidateChildren, rank_matches
from cpu_intake.domain.referral import ReferralCreate, cambodia_date
from cpu_intake.domain.triage import default_rules
from cpu_intake.service_layer import publishing, referrals
from cpu_intake.service_layer.referrals import Intake
from cpu_shared.db import alembic_config, apply_migrations, create_engine, session_factory
from cpu_shared.security.auth import Principal
from cpu_shared.security.crypto import DecryptionError, Keyring
from cpu_shared.security.rotation import rotate_store

pytestmark = pytest.mark.integration

OFFICER = Principal(user="officer.store", roles=frozenset({"intake_officer"}))


class Store:
    """The runtime's unit of work without the broker: migrations, engine, transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = session_factory(self.engine)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.sessions() as session, session.begin():
            yield session

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.engine.connect() as conn:
            return list((await conn.execute(sa.text(sql), params)).all())


@contextlib.asynccontextmanager
async def store_at(url: str) -> AsyncIterator[tuple[Store, Intake]]:
    await apply_migrations("cpu_intake.migrations", url)
    store = Store(url)
    try:
        yield store, Intake(store, keyring=Keyring.load, rules=default_rules())
    finally:
        await store.engine.dispose()


@pytest.fixture
async def pg(make_database) -> AsyncIterator[tuple[Store, Intake]]:
    async with store_at(make_database("intake")) as pair:
        yield pair


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[tuple[Store, Intake]]:
    async with store_at(f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}") as pair:
        yield pair


def details(body: dict[str, Any]) -> ReferralCreate:
    return ReferralCreate.model_validate(body)


async def test_a_raw_dump_holds_no_personal_value_in_plaintext(pg, body) -> None:
    store, intake = pg
    sent = body(
        reporter={"name": "Reporter Phalla", "phone": "+855 97 765 4321", "relationship": "teacher"}
    )
    created = await referrals.submit(intake, OFFICER, details(sent))
    child = sent["children"][0]
    secrets = {
        child["given_name"],
        child["family_name"],
        child["name_km"],
        child["village"],
        child["district"],
        child["commune"],
        "2016-05-04",
        "Reporter Phalla",
        "teacher",
        "85597765432",
        "97 765 4321",
        sent["narrative"],
        sent["alleged_perpetrators"][0]["name"],
        "stepfather",
    }
    tables = [
        r.tablename
        for r in await store.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    assert {"referral", "referral_child", "referral_match_digest"} <= set(tables)
    dump = []
    for table in tables:
        dump += [r[0] for r in await store.rows(f'SELECT t::text FROM "{table}" t')]  # noqa: S608
    dump += [r[0] for r in await store.rows("SELECT convert_from(payload, 'UTF8') FROM outbox")]
    text = "\n".join(dump)
    assert created.reference in text  # the dump is real
    for value in secrets:
        assert value not in text, value
        assert value.lower() not in text.lower(), value
    # Every personal column holds an enc1 token, bound to its row.
    row = (await store.rows("SELECT * FROM referral_child"))[0]._mapping
    for column in ("given_name_enc", "family_name_enc", "name_km_enc", "village_enc"):
        assert row[column].startswith("enc1."), column
    digests = await store.rows("SELECT kind, digest FROM referral_match_digest")
    assert digests and all(re.fullmatch(r"[0-9a-f]{32}", d.digest) for d in digests)


async def test_a_ciphertext_moved_to_another_row_does_not_decrypt(pg, body) -> None:
    store, intake = pg
    a = await referrals.submit(intake, OFFICER, details(body()))
    b = await referrals.submit(intake, OFFICER, details(body()))
    token = (await store.rows("SELECT narrative_enc FROM referral WHERE id = :id", id=a.id))[0][0]
    with pytest.raises(DecryptionError):
        intake.protection.open("referral", "narrative_enc", b.id, token)
    with pytest.raises(DecryptionError):
        intake.protection.open("referral", "reporter_enc", a.id, token)
    assert intake.protection.open("referral", "narrative_enc", a.id, token).startswith("Neigh")


async def _concurrent_references(store: Store, intake: Intake, body, n: int) -> list[str]:
    created = await asyncio.gather(
        *(referrals.submit(intake, OFFICER, details(body())) for _ in range(n))
    )
    year = cambodia_date(datetime.now(UTC)).year
    references = sorted(c.reference for c in created)
    assert references == [f"REF-{year}-{i:06d}" for i in range(1, n + 1)]
    return references


async def test_references_are_unique_and_gapless_under_concurrency_on_postgres(
    pg, body, monkeypatch
) -> None:
    store, intake = pg
    await _concurrent_references(store, intake, body, 40)
    # A submission that fails after taking a number gives it back: no gap.
    real = publishing.submitted

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the outbox is broken")

    monkeypatch.setattr(publishing, "submitted", broken)
    with pytest.raises(RuntimeError):
        await referrals.submit(intake, OFFICER, details(body()))
    monkeypatch.setattr(publishing, "submitted", real)
    after = await referrals.submit(intake, OFFICER, details(body()))
    assert after.reference.endswith("-000041")
    assert len(await store.rows("SELECT id FROM referral")) == 41


async def test_references_are_unique_and_gapless_under_concurrency_on_sqlite(lite, body) -> None:
    store, intake = lite
    await _concurrent_references(store, intake, body, 15)


async def test_matching_reads_digests_never_the_encrypted_fields(pg, body) -> None:
    store, intake = pg
    first = body()
    earlier = await referrals.submit(intake, OFFICER, details(first))
    # Wipe every personal field of the earlier referral: matching must not need them.
    async with store.transaction() as session:
        await session.execute(
            sa.text(
                "UPDATE referral_child SET given_name_enc = 'x', family_name_enc = 'x', "
                "name_km_enc = 'x', date_of_birth_enc = 'x', district_enc = 'x', "
                "commune_enc = 'x', village_enc = 'x'"
            )
        )
        await session.execute(sa.text("UPDATE referral SET reporter_enc = 'x'"))
    again = dict(first)
    again["reporter"] = {"anonymous": True}
    later = await referrals.submit(intake, OFFICER, details(again))
    assert later.possible_matches == 1
    found = await referrals.matches(intake, OFFICER, later.id)
    assert [m.referral_id for m in found.matches] == [earlier.id]
    assert found.matches[0].score > 0.99
    assert {"name_exact", "name_km", "dob_exact", "village"} <= set(found.matches[0].reasons)


async def test_matching_works_on_sqlite_too(lite, body) -> None:
    _, intake = lite
    first = body()
    earlier = await referrals.submit(intake, OFFICER, details(first))
    later = await referrals.submit(intake, OFFICER, details(first))
    assert later.match_decision_pending
    found = await referrals.matches(intake, OFFICER, later.id)
    assert [m.referral_id for m in found.matches] == [earlier.id]


async def test_every_handler_writes_its_audit_row(pg, body) -> None:
    store, intake = pg
    created = await referrals.submit(intake, OFFICER, details(body()))
    await referrals.get(intake, OFFICER, created.id)
    outsider = Principal(user="investigator.x", roles=frozenset({"investigator"}))
    with pytest.raises(referrals.ReferralNotFound):
        await referrals.get(intake, outsider, created.id)
    rows = await store.rows(
        "SELECT user_id, action, record_type, record_id, outcome FROM audit_log ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("officer.store", "referral.create", "referral", str(created.id), "allowed"),
        ("officer.store", "referral.read", "referral", str(created.id), "allowed"),
        ("investigator.x", "referral.read", "referral", str(created.id), "denied"),
    ]


def _schema_differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    wanted = {"referral", "referral_child", "referral_match_digest", "referral_match_decision"}
    wanted |= {"referral_status_change", "referral_reference_sequence"}

    def ours(diff: Any) -> bool:
        text = json.dumps(diff, default=str)
        return any(f"'{t}'" in text or f'"{t}"' in text or f"({t}" in text for t in wanted)

    return [d for d in compare_metadata(context, SQLModel.metadata) if ours(d)]


async def test_the_migration_builds_exactly_the_tables_of_the_code(pg) -> None:
    store, _ = pg
    async with store.engine.connect() as conn:
        differences = await conn.run_sync(_schema_differences)
    assert differences == []


def test_the_migration_goes_down_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    config = alembic_config("cpu_intake.migrations", url)
    command.upgrade(config, "head")
    command.downgrade(config, "intake_0002")
    command.upgrade(config, "head")


def test_encrypted_columns_are_listed_for_key_rotation() -> None:
    from cpu_intake.adapters.tables import ENCRYPTED_COLUMNS

    for table, columns in ENCRYPTED_COLUMNS.items():
        model_columns = set(SQLModel.metadata.tables[table].c.keys())
        assert set(columns) <= model_columns
        assert {c for c in model_columns if c.endswith("_enc")} == set(columns)


async def test_candidates_score_exactly_as_their_full_digests(pg, body, names) -> None:
    """The repository reads only the digests a candidate shares with the new referral and
    stands in for the rest: the scores must be those of the full sets."""
    store, intake = pg
    first = body()
    child = first["children"][0]
    variants = [
        {},  # the same child
        {"given_name": names.latin()},  # another given name
        {"name_km": None, "date_of_birth": None, "age_estimate": 9},  # less known
        {"village": "Another village", "sex": "male"},
        {"family_name": child["family_name"][:-1]},  # a typo
    ]
    for changes in variants:
        await referrals.submit(intake, OFFICER, details(body(children=[{**child, **changes}])))
    probe = await referrals.submit(intake, OFFICER, details(first))
    async with store.transaction() as session:
        repo = ReferralRepository(session, intake.protection)
        probe_digests = await repo.stored_digests(probe.id)
        row = await repo.get(probe.id)
        fast = await repo.candidates(probe_digests, before=(row.submitted_at, row.id), limit=100)
        full = [
            CandidateChildren(c.referral_id, await repo.stored_digests(c.referral_id)) for c in fast
        ]
    assert len(fast) == len(variants)
    expected = rank_matches(probe_digests, full, threshold=0.0)
    got = rank_matches(probe_digests, as_candidate_children(fast), threshold=0.0)
    assert [(m.referral_id, m.score, m.reasons) for m in got] == [
        (m.referral_id, m.score, m.reasons) for m in expected
    ]
    assert len({m.score for m in got}) > 2  # the variants really score differently


async def test_after_a_master_key_rotation_everything_reads_and_new_writes_use_the_new_key(
    pg, body
) -> None:
    store, intake = pg
    old = Keyring.load()
    sent = body()
    before = await referrals.submit(intake, OFFICER, details(sent))
    new_key = secrets.token_bytes(32)
    rotated = Keyring(
        master_keys={**old.master_keys, "k2": new_key},
        active_master_key="k2",
        blind_index_key=old.blind_index_key,
        pseudonym_key=old.pseudonym_key,
        source="environment",
    )
    done = await rotate_store(store.engine, rotated.field_cipher(), batch_size=2)
    assert sum(done.values()) > 0
    after_rotation = Intake(store, keyring=lambda: rotated, rules=default_rules())
    got = await referrals.get(after_rotation, OFFICER, before.id)
    assert got.children[0].name_km == sent["children"][0]["name_km"]
    assert got.narrative == sent["narrative"]
    new = await referrals.submit(after_rotation, OFFICER, details(body()))
    tokens = [
        value
        for row in await store.rows("SELECT * FROM referral_child")
        for name, value in row._mapping.items()
        if name.endswith("_enc") and value is not None
    ]
    assert tokens and all(t.startswith("enc1.k2.") for t in tokens)
    assert (await referrals.get(after_rotation, OFFICER, new.id)).reference == new.reference
    # Matching still finds the earlier child: digests do not depend on the master key.
    again = await referrals.submit(after_rotation, OFFICER, details(sent))
    assert again.possible_matches >= 1
