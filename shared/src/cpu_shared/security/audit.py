"""The append-only audit log each service keeps in its own store.

One row per access decision worth proving later: who (user id and roles), did what (action),
to which record (type and id), allowed or denied, from where (client address) and under which
correlation id. Rows hold identifiers and codes only - never a name, phone, address or
narrative - and :func:`record_access` enforces that by shape, so the log can be handed to an
auditor or produced in court without itself leaking a child's details.

Append-only is enforced twice: the application has no code path that updates or deletes a row
(and :func:`audit_router` exposes no such route), and the database refuses it with triggers
created by :func:`create_audit_table`. A database owner can still drop a trigger; production
should run the services as a role that does not own ``audit_log`` and holds only INSERT and
SELECT on it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from sqlmodel import Field, SQLModel, select

from cpu_shared.security.auth import Principal
from cpu_shared.security.permissions import AUDIT_READ, PermissionTable

TABLE = "audit_log"
Outcome = Literal["allowed", "denied"]

_ACTION = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$")
_RECORD_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Ids (UUIDs, references like CPU-2025-000123): no spaces, no letters outside ASCII, so a
# name or a phrase cannot be passed off as an id.
RECORD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
_RECORD_ID = re.compile(RECORD_ID_PATTERN)
_USER = re.compile(r"^[\x21-\x7e]{1,200}$")
_CORRELATION = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class AuditEntry(SQLModel, table=True):
    """One audit row. Ids and codes only."""

    __tablename__ = TABLE

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    occurred_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    # The column is user_id: "user" is a reserved word in PostgreSQL, and an unquoted
    # `SELECT user FROM audit_log` there silently returns the *database* user on every row.
    user: str = Field(sa_column=sa.Column("user_id", sa.String(200), nullable=False))
    roles: str = Field(max_length=500)
    action: str = Field(max_length=100)
    record_type: str | None = Field(default=None, max_length=64)
    record_id: str | None = Field(default=None, max_length=200)
    outcome: str = Field(max_length=16)
    client_ip: str | None = Field(default=None, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=100)


_APPEND_ONLY_MESSAGE = "audit_log is append-only"


def _append_only_ddl(dialect: str) -> list[str]:
    """The statements that make ``audit_log`` refuse UPDATE and DELETE (and TRUNCATE)."""
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MESSAGE}' "
            "USING ERRCODE = 'insufficient_privilege'; END $$",
            f"CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
            f"CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
        ]
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MESSAGE}'); END"
            for event in ("UPDATE", "DELETE")
        ]
    # Refused rather than left without protection.
    raise RuntimeError(f"no append-only triggers for the {dialect} dialect")


@sa.event.listens_for(AuditEntry.__table__, "after_create")  # type: ignore[attr-defined]
def _triggers_on_create_all(table: sa.Table, connection: sa.Connection, **_kw: Any) -> None:
    # Tests and tools that build tables with metadata.create_all() instead of the migration
    # get the same triggers: there is no way to create this table without them.
    for statement in _append_only_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)


def create_audit_table(op: Any) -> None:
    """Create ``audit_log`` and its append-only triggers from an Alembic migration.

    PostgreSQL: a trigger function raising on UPDATE, DELETE (per row) and TRUNCATE.
    SQLite: ``BEFORE UPDATE`` / ``BEFORE DELETE`` triggers that ``RAISE(ABORT, ...)``.
    Other databases are refused rather than left without protection.
    """
    op.create_table(
        TABLE,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("roles", sa.String(500), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("record_type", sa.String(64), nullable=True),
        sa.Column("record_id", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=True),
        sa.Column("correlation_id", sa.String(100), nullable=True),
        sa.CheckConstraint("outcome IN ('allowed', 'denied')", name="ck_audit_log_outcome"),
    )
    # The auditor's questions: "who touched this record?" and "what did this user do?".
    op.create_index("ix_audit_log_record", TABLE, ["record_type", "record_id", "id"])
    op.create_index("ix_audit_log_user", TABLE, ["user_id", "id"])
    op.create_index("ix_audit_log_occurred_at", TABLE, ["occurred_at"])

    for statement in _append_only_ddl(op.get_context().dialect.name):
        op.execute(statement)


def drop_audit_table(op: Any) -> None:
    """Undo :func:`create_audit_table` (downgrade only; the rows go with the table)."""
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_truncate ON {TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_update_delete ON {TABLE}")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    op.drop_index("ix_audit_log_occurred_at", table_name=TABLE)
    op.drop_index("ix_audit_log_user", table_name=TABLE)
    op.drop_index("ix_audit_log_record", table_name=TABLE)
    op.drop_table(TABLE)
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")


def _current_correlation_id(request: Request | None) -> str | None:
    value: str | None = None
    try:
        from asgi_correlation_id import correlation_id as http_correlation_id

        value = http_correlation_id.get()
    except ImportError:  # pragma: no cover - a declared dependency
        value = None
    if value is None:
        from cpu_shared.logging import correlation_id as message_correlation_id

        value = message_correlation_id.get()
    if value is None and request is not None:
        value = request.headers.get("x-correlation-id")
    # A client-chosen header is only kept if it has the shape of an id.
    return value if value is not None and _CORRELATION.match(value) else None


def _client_ip(request: Request | None) -> str | None:
    if request is None:
        return None
    # Set by the authentication dependency (which knows the trusted proxies).
    resolved = getattr(request.state, "client_ip", None)
    if resolved is not None:
        return str(resolved)[:64]
    return request.client.host[:64] if request.client else None


def record_access(
    session: Any,
    principal: Principal,
    *,
    action: str,
    record_type: str | None,
    record_id: str | None,
    request: Request | None = None,
    outcome: Outcome = "allowed",
) -> AuditEntry:
    """Add one audit row to ``session`` - in the caller's transaction, so the row commits
    exactly when the access it records does.

    Every field must have the shape of an id or a code; anything else (a name, a sentence)
    raises ``ValueError``: that is a bug in the caller, and it is better to fail than to write
    personal data into the one table that can never be cleaned.
    """
    entry = AuditEntry(
        **audit_values(
            principal,
            action=action,
            record_type=record_type,
            record_id=record_id,
            request=request,
            outcome=outcome,
        )
    )
    session.add(entry)
    return entry


def audit_values(
    principal: Principal,
    *,
    action: str,
    record_type: str | None,
    record_id: str | None,
    request: Request | None = None,
    outcome: Outcome = "allowed",
) -> dict[str, Any]:
    """The checked values of one audit row (attribute names of :class:`AuditEntry`), for a
    caller that inserts it with a plain statement in its own transaction (a hot path): the
    same checks as :func:`record_access`, which builds its row from these."""
    if not _ACTION.match(action):
        raise ValueError("audit action must be a dotted code such as 'referral.read'")
    if record_type is not None and not _RECORD_TYPE.match(record_type):
        raise ValueError("audit record_type must be a lowercase code such as 'referral'")
    if record_id is not None and not _RECORD_ID.match(record_id):
        raise ValueError("audit record_id must be an identifier, not free text")
    if outcome not in ("allowed", "denied"):
        raise ValueError("audit outcome is 'allowed' or 'denied'")
    if not _USER.match(principal.user):
        raise ValueError("audit user must be an identifier")
    return {
        "occurred_at": datetime.now(UTC),
        "user": principal.user,
        "roles": principal.roles_text,
        "action": action,
        "record_type": record_type,
        "record_id": record_id,
        "outcome": outcome,
        "client_ip": _client_ip(request),
        "correlation_id": _current_correlation_id(request),
    }


async def query_audit(
    session: Any,
    *,
    record_type: str | None = None,
    record_id: str | None = None,
    user: str | None = None,
    action: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditEntry]:
    """Audit rows matching every given filter, newest first."""
    if not 1 <= limit <= 1000 or offset < 0:
        raise ValueError("limit is 1-1000 and offset is not negative")
    columns = AuditEntry.__table__.c  # type: ignore[attr-defined]
    stmt = select(AuditEntry)
    if record_type is not None:
        stmt = stmt.where(columns.record_type == record_type)
    if record_id is not None:
        stmt = stmt.where(columns.record_id == record_id)
    if user is not None:
        stmt = stmt.where(columns.user_id == user)
    if action is not None:
        stmt = stmt.where(columns.action == action)
    stmt = stmt.order_by(columns.id.desc()).limit(limit).offset(offset)
    if hasattr(session, "exec"):  # SQLModel's AsyncSession (what the services use)
        return list((await session.exec(stmt)).all())
    return list((await session.execute(stmt)).scalars().all())  # plain SQLAlchemy session


class AuditEntryOut(BaseModel):
    """One audit row as the API shows it."""

    id: int
    occurred_at: datetime
    user: str
    roles: list[str]
    action: str
    record_type: str | None
    record_id: str | None
    outcome: str
    client_ip: str | None
    correlation_id: str | None

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryOut:
        """Convert a row (SQLite returns naive datetimes; they are stored in UTC)."""
        occurred = entry.occurred_at
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        return cls(
            id=int(entry.id or 0),
            occurred_at=occurred,
            user=entry.user,
            roles=[r for r in entry.roles.split(",") if r],
            action=entry.action,
            record_type=entry.record_type,
            record_id=entry.record_id,
            outcome=entry.outcome,
            client_ip=entry.client_ip,
            correlation_id=entry.correlation_id,
        )


class AuditPage(BaseModel):
    """A page of audit rows, newest first."""

    entries: list[AuditEntryOut]
    limit: int
    offset: int


def audit_router(
    permission_table: PermissionTable,
    sessions_dependency: Callable[..., AsyncIterator[Any]] | Callable[..., Any],
) -> APIRouter:
    """``GET /audit``: the service's audit log, for principals the table grants ``audit.read``
    (merge :data:`~cpu_shared.security.permissions.AUDIT_GRANTS`: auditor and supervisor).

    ``sessions_dependency`` is a FastAPI dependency yielding an AsyncSession. Reading the log
    is itself audited (``audit.read`` on ``audit_log``), committed before the answer. There is
    deliberately no route that changes or removes a row.
    """
    router = APIRouter(tags=["audit"])

    @router.get("/audit", response_model=AuditPage)
    async def read_audit_log(
        request: Request,
        record_type: str | None = Query(default=None, pattern=_RECORD_TYPE.pattern),
        record_id: str | None = Query(default=None, pattern=RECORD_ID_PATTERN),
        user: str | None = Query(default=None, pattern=_USER.pattern),
        action: str | None = Query(default=None, pattern=_ACTION.pattern),
        limit: int = Query(default=100, ge=1, le=1000),
        offset: int = Query(default=0, ge=0, le=100_000_000),
        principal: Principal = Depends(permission_table.require(AUDIT_READ)),
        session: Any = Depends(sessions_dependency),
    ) -> AuditPage:
        entries = await query_audit(
            session,
            record_type=record_type,
            record_id=record_id,
            user=user,
            action=action,
            limit=limit,
            offset=offset,
        )
        page = AuditPage(entries=[AuditEntryOut.of(e) for e in entries], limit=limit, offset=offset)
        # Who looked at whose trail is itself on the trail.
        record_access(
            session,
            principal,
            action=AUDIT_READ,
            record_type="audit_log",
            record_id=record_id,
            request=request,
        )
        await session.commit()
        return page

    return router
