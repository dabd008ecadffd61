"""Messaging tables every service has in its own store: the outbox and the inbox.

The outbox holds events written in the same transaction as the state change they announce; a
relay publishes them. The inbox records which events a consumer group has already applied, in
the same transaction as their effect, so a redelivery changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    event_id: uuid.UUID = Field(unique=True)
    topic: str = Field(max_length=200)
    message_key: str = Field(max_length=200)
    payload: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True), index=True)


class InboxEntry(SQLModel, table=True):
    __tablename__ = "inbox"

    consumer_group: str = Field(primary_key=True, max_length=200)
    event_id: str = Field(primary_key=True, max_length=200)
    topic: str = Field(max_length=200)
    processed_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


class AggregateVersion(SQLModel, table=True):
    """The newest version of an aggregate a handler has applied, per stream of events."""

    __tablename__ = "aggregate_version"

    stream: str = Field(primary_key=True, max_length=200)
    aggregate_id: str = Field(primary_key=True, max_length=200)
    version: int


def create_messaging_tables(op: object) -> None:
    """Create the outbox, inbox and aggregate versions from a service's first migration."""
    op.create_table(  # type: ignore[attr-defined]
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("message_key", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The relay scans unsent rows in id order; a partial index keeps that scan small.
    op.create_index(  # type: ignore[attr-defined]
        "ix_outbox_unsent",
        "outbox",
        ["id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(  # type: ignore[attr-defined]
        "inbox",
        sa.Column("consumer_group", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(  # type: ignore[attr-defined]
        "aggregate_version",
        sa.Column("stream", sa.String(200), primary_key=True),
        sa.Column("aggregate_id", sa.String(200), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )


def drop_messaging_tables(op: object) -> None:
    op.drop_table("aggregate_version")  # type: ignore[attr-defined]
    op.drop_table("inbox")  # type: ignore[attr-defined]
    op.drop_index("ix_outbox_unsent", table_name="outbox")  # type: ignore[attr-defined]
    op.drop_table("outbox")  # type: ignore[attr-defined]
