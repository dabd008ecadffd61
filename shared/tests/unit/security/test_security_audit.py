"""The append-only audit log: migration helper, database triggers, writer, reader, router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from cpu_shared.security.audit import (
    audit_router,
    create_audit_table,
    drop_audit_table,
    query_audit,
    record_access,
)
from cpu_shared.security.auth import AuthSettings, Principal, install_auth, mint_dev_token
from cpu_shared.security.permissions import AUDIT_GRANTS, PermissionTable, Role

OFFICER = Principal(user="officer-7", roles=frozenset({"investigator"}))


def operations(conn: sa.Connection) -> Operations:
    return Operations(MigrationContext.configure(conn))


def migrate(sync_url: str, *, down: bool = False) -> None:
    engine = sa.create_engine(sync_url)
    with engine.begin() as conn:
        op = operations(conn)
        (drop_audit_table if down else create_audit_table)(op)
    engine.dispose()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "service.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
async def engine(db_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{db_path}")
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def add_entries(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        record_access(
            session,
            OFFICER,
            action="referral.read",
            record_type="referral",
            record_id="0b9c7f2e-5d0b-4a39-9a55-1f6f1d1c2b3a",
        )
        record_access(
            session,
            OFFICER,
            action="referral.update",
            record_type="referral",
            record_id="CPU-2025-000123",
            outcome="denied",
        )
        record_access(
            session,
            Principal(user="sup-1", roles=frozenset({"supervisor"})),
            action="case.read",
            record_type="case",
            record_id="c-1",
        )


async def test_rows_are_written_and_read_back(sessions: async_sessionmaker[AsyncSession]) -> None:
    await add_entries(sessions)
    async with sessions() as session:
        rows = await query_audit(session, user="officer-7", limit=10)
        assert [r.action for r in rows] == ["referral.update", "referral.read"]  # newest first
        assert rows[0].outcome == "denied"
        assert rows[0].roles == "investigator"
        assert rows[0].occurred_at is not None
        only = await query_audit(session, record_type="referral", record_id="CPU-2025-000123")
        assert len(only) == 1
        assert len(await query_audit(session, limit=1, offset=2)) == 1


async def test_update_and_delete_are_refused_by_the_database(
    sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await add_entries(sessions)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text("UPDATE audit_log SET outcome = 'allowed'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM audit_log WHERE id = 1"))
    async with engine.connect() as conn:
        outcomes = (await conn.execute(sa.text("SELECT outcome FROM audit_log ORDER BY id"))).all()
    assert [o for (o,) in outcomes] == ["allowed", "denied", "allowed"]


async def test_personal_values_cannot_be_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        with pytest.raises(ValueError, match="record_id"):
            record_access(
                session,
                OFFICER,
                action="referral.read",
                record_type="referral",
                record_id="Sok Dara",
            )
        with pytest.raises(ValueError, match="record_id"):
            record_access(
                session, OFFICER, action="referral.read", record_type="referral", record_id="សុខ"
            )
        with pytest.raises(ValueError, match="action"):
            record_access(
                session,
                OFFICER,
                action="looked at the file of Sok Dara",
                record_type="referral",
                record_id="r1",
            )
        with pytest.raises(ValueError, match="outcome"):
            record_access(
                session,
                OFFICER,
                action="referral.read",
                record_type="referral",
                record_id="r1",
                outcome="maybe",
            )  # type: ignore[arg-type]


def test_create_all_also_makes_the_table_append_only(tmp_path: Path) -> None:
    from cpu_shared.security.audit import AuditEntry

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        AuditEntry.__table__.create(engine)  # type: ignore[attr-defined]
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO audit_log (occurred_at, user_id, roles, action, outcome) "
                    "VALUES ('2026-01-01 00:00:00', 'u', 'auditor', 'audit.read', 'allowed')"
                )
            )
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM audit_log"))
    finally:
        engine.dispose()


def test_downgrade_removes_table_and_triggers(db_path: Path) -> None:
    migrate(f"sqlite:///{db_path}", down=True)
    engine = sa.create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        names = {n for (n,) in conn.execute(sa.text("SELECT name FROM sqlite_master"))}
    engine.dispose()
    assert not {n for n in names if "audit" in n}


@pytest.fixture
async def client(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, AuthSettings]]:
    settings = AuthSettings(
        dev_signing_key_file=tmp_path / "dev.pem",
        jwks_url=None,
        allow_dev_keys=True,
        failure_limit=1000,
    )
    table = PermissionTable("intake", {"referral.read": {Role.investigator}, **AUDIT_GRANTS})

    async def session_dep() -> AsyncIterator[AsyncSession]:
        async with sessions() as session, session.begin():
            yield session

    app = FastAPI()
    install_auth(app, settings)
    app.include_router(audit_router(table, session_dep), prefix="/api/v1")

    @app.get("/api/v1/probe")
    async def probe(request: Request) -> dict:  # exposes what record_access derives
        async with sessions() as session, session.begin():
            entry = record_access(
                session,
                OFFICER,
                action="referral.read",
                record_type="referral",
                record_id="r9",
                request=request,
            )
        return {"client_ip": entry.client_ip}

    await add_entries(sessions)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c, settings


async def test_audit_route_for_auditor_and_supervisor_only(
    client: tuple[httpx.AsyncClient, AuthSettings],
) -> None:
    c, settings = client
    for role, status in (
        ("auditor", 200),
        ("supervisor", 200),
        ("investigator", 403),
        ("ops", 403),
    ):
        token = mint_dev_token(settings, f"user-{role}", [role])
        r = await c.get(
            "/api/v1/audit",
            params={"user": "officer-7"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == status, (role, r.text)
    assert (await c.get("/api/v1/audit")).status_code == 401


async def test_audit_route_filters_and_audits_itself(
    client: tuple[httpx.AsyncClient, AuthSettings],
) -> None:
    c, settings = client
    headers = {"Authorization": f"Bearer {mint_dev_token(settings, 'aud-1', ['auditor'])}"}
    r = await c.get(
        "/api/v1/audit",
        headers=headers,
        params={"record_type": "referral", "record_id": "CPU-2025-000123"},
    )
    assert r.status_code == 200
    entries = r.json()["entries"]
    assert len(entries) == 1
    assert entries[0]["user"] == "officer-7"
    assert entries[0]["outcome"] == "denied"
    assert entries[0]["roles"] == ["investigator"]
    assert entries[0]["occurred_at"].endswith(("Z", "+00:00"))

    r = await c.get("/api/v1/audit", headers=headers, params={"user": "aud-1"})
    reads = r.json()["entries"]
    assert reads and reads[-1]["action"] == "audit.read"
    assert reads[-1]["record_type"] == "audit_log"
    assert reads[-1]["client_ip"] == "198.51.100.4"

    bad = await c.get("/api/v1/audit", headers=headers, params={"record_id": "Sok Dara"})
    assert bad.status_code == 422
    too_many = await c.get("/api/v1/audit", headers=headers, params={"limit": 5000})
    assert too_many.status_code == 422


async def test_audit_route_has_no_write_methods(
    client: tuple[httpx.AsyncClient, AuthSettings],
) -> None:
    c, settings = client
    headers = {"Authorization": f"Bearer {mint_dev_token(settings, 'aud-1', ['auditor'])}"}
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        r = await c.request(method, "/api/v1/audit", headers=headers)
        assert r.status_code == 405, method
        r = await c.request(method, "/api/v1/audit/1", headers=headers)
        assert r.status_code in (404, 405), method


async def test_client_ip_without_authentication_falls_back_to_peer(
    client: tuple[httpx.AsyncClient, AuthSettings],
) -> None:
    c, _ = client
    assert (await c.get("/api/v1/probe")).json() == {"client_ip": "198.51.100.4"}


@pytest.mark.integration
async def test_append_only_on_postgresql(make_database) -> None:  # type: ignore[no-untyped-def]
    url = make_database("audit")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: create_audit_table(operations(c)))
        sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
        await add_entries(sessions)
        for statement in (
            "UPDATE audit_log SET outcome = 'allowed'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(sa.text(statement))
        async with sessions() as session:
            assert len(await query_audit(session, limit=10)) == 3
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: drop_audit_table(operations(c)))
    finally:
        await engine.dispose()
