"""LocalPostgres and the pytest fixtures, against a real PostgreSQL server.

Needs the plugin: ``pytest -p cpu_platform.testing.postgres_fixtures`` (or a conftest that
lists it in ``pytest_plugins``).
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from cpu_platform.devstack import postgres as pgmod
from cpu_platform.devstack.postgres import (
    LocalPostgres,
    ensure_postgres_installed,
    find_pg_bindir,
)
from cpu_platform.testing.postgres_fixtures import ENV_URL, SERVICES

pytestmark = pytest.mark.integration


def test_find_pg_bindir_has_server_tools() -> None:
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed yet (LocalPostgres.start installs it)")
    assert (bindir / "initdb").is_file()
    assert (bindir / "pg_ctl").is_file()


def test_install_when_not_root_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgmod, "find_pg_bindir", lambda: None)
    monkeypatch.setattr(pgmod, "_is_root", lambda: False)
    with pytest.raises(
        RuntimeError, match=r"apt-get install -y --no-install-recommends postgresql"
    ):
        ensure_postgres_installed()


def test_install_as_root_runs_apt_once_without_main_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_bindir = tmp_path / "15" / "bin"
    calls: list[list[str]] = []
    dropin = tmp_path / "createcluster.d" / "00-cpu-platform.conf"

    def fake_apt(args: list[str]) -> None:
        assert dropin.read_text().count("create_main_cluster = false") == 1
        calls.append(args)
        if args[0] == "install":
            fake_bindir.mkdir(parents=True)

    monkeypatch.setattr(
        pgmod, "find_pg_bindir", lambda: fake_bindir if fake_bindir.exists() else None
    )
    monkeypatch.setattr(pgmod, "_is_root", lambda: True)
    monkeypatch.setattr(pgmod, "_run_apt", fake_apt)
    monkeypatch.setattr(pgmod, "_CREATECLUSTER_DROPIN", dropin)
    monkeypatch.setattr(pgmod, "_INSTALL_LOCK", tmp_path / "install.lock")

    assert ensure_postgres_installed() == fake_bindir
    assert ensure_postgres_installed() == fake_bindir  # already there: no apt
    assert [c[0] for c in calls] == ["update", "install"]
    assert calls[1][-1] == "postgresql"
    assert "--no-install-recommends" in calls[1]


async def test_local_postgres_keeps_data_across_an_outage(tmp_path: Path) -> None:
    # tmp_path lives under /tmp/pytest-of-root (mode 0700): start() must cope with that.
    pg = LocalPostgres(tmp_path / "pg")
    await asyncio.to_thread(pg.start)
    engine = None
    try:
        assert pg.is_running()
        port = pg.port
        if os.geteuid() == 0:
            assert pg.data_dir.stat().st_uid != 0  # owned by the postgres OS user
        assert stat.S_IMODE(pg.data_dir.stat().st_mode) == 0o700

        await asyncio.to_thread(pg.create_database, "outage_db")
        await asyncio.to_thread(pg.create_database, "outage_db")  # idempotent
        url = pg.url("outage_db")
        assert url == f"postgresql+asyncpg://app@127.0.0.1:{port}/outage_db"

        engine = create_async_engine(url, pool_pre_ping=True)
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE tips (id int PRIMARY KEY, body text)"))
            await conn.execute(text("INSERT INTO tips VALUES (1, 'first tip')"))
        async with engine.connect() as conn:
            body = (await conn.execute(text("SELECT body FROM tips WHERE id = 1"))).scalar_one()
        assert body == "first tip"

        # Outage: the server goes away, connecting fails.
        await asyncio.to_thread(pg.stop)
        assert not pg.is_running()
        await asyncio.to_thread(pg.stop)  # idempotent
        with pytest.raises((OSError, DBAPIError)):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        # Back again, same port, same data; the same engine recovers (pre-ping).
        await asyncio.to_thread(pg.start)
        assert pg.is_running()
        assert pg.port == port
        async with engine.connect() as conn:
            body = (await conn.execute(text("SELECT body FROM tips WHERE id = 1"))).scalar_one()
        assert body == "first tip"

        await engine.dispose()
        await asyncio.to_thread(pg.drop_database, "outage_db")
        await asyncio.to_thread(pg.drop_database, "outage_db")  # idempotent
        assert not await asyncio.to_thread(pg.database_exists, "outage_db")
    finally:
        if engine is not None:
            await engine.dispose()
        await asyncio.to_thread(pg.stop)
    assert not pg.is_running()


async def test_make_database_gives_distinct_working_databases(make_database) -> None:
    url_a = make_database("intake")
    url_b = make_database("intake")
    assert url_a != url_b
    for url in (url_a, url_b):
        assert url.startswith("postgresql+asyncpg://")
        assert re.search(r"/intake_[0-9a-f]{12}$", url)

    engine_a = create_async_engine(url_a)
    engine_b = create_async_engine(url_b)
    try:
        async with engine_a.begin() as conn:
            await conn.execute(text("CREATE TABLE cases (id int PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO cases VALUES (7)"))
        async with engine_b.begin() as conn:
            await conn.execute(text("CREATE TABLE cases (id int PRIMARY KEY)"))
        async with engine_a.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM cases"))).scalar_one() == 1
            db_a = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        async with engine_b.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM cases"))).scalar_one() == 0
            db_b = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        assert db_a != db_b
        assert url_a.endswith("/" + db_a)
        assert url_b.endswith("/" + db_b)
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


async def test_create_and_drop_database_on_session_server(postgres_server) -> None:
    name = "cpu_fixture_check"
    await asyncio.to_thread(postgres_server.drop_database, name)
    await asyncio.to_thread(postgres_server.create_database, name)
    await asyncio.to_thread(postgres_server.create_database, name)  # idempotent
    engine = create_async_engine(postgres_server.url(name))
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT current_database()"))).scalar_one() == name
    # Dropping terminates the pooled connection still open in the engine.
    await asyncio.to_thread(postgres_server.drop_database, name)
    await asyncio.to_thread(postgres_server.drop_database, name)  # idempotent
    await engine.dispose()
    with pytest.raises(DBAPIError, match="does not exist"):
        async with create_async_engine(postgres_server.url(name)).connect() as conn:
            await conn.execute(text("SELECT 1"))


async def test_service_databases_one_per_service(service_databases) -> None:
    assert set(service_databases) == set(SERVICES)
    assert len(set(service_databases.values())) == len(SERVICES)
    for service, url in service_databases.items():
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                name = (await conn.execute(text("SELECT current_database()"))).scalar_one()
        finally:
            await engine.dispose()
        assert name.startswith(f"{service}_")


@pytest.mark.skipif(bool(os.environ.get(ENV_URL)), reason="external server in use")
def test_session_server_is_local(postgres_server) -> None:
    assert isinstance(postgres_server, LocalPostgres)
    assert postgres_server.is_running()
    assert postgres_server.url("x", driver="postgresql").startswith("postgresql://app@127.0.0.1:")
