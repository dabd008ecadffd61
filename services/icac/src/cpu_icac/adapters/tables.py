"""The icac store (migration ``icac_0003``). Personal fields only ever hold ``enc1`` tokens.

- ``icac_tip``: one row per report (provider + report id): the facts triage needs, as codes,
  dates and counts; the priority with its reasons; the subject cluster; the analyst's work.
- ``icac_tip_version``: every distinct version received, with where it came from and the
  whole normalised report ENCRYPTED (screen names, e-mails, phones, IPs, narrative, reporter,
  file names and hashes live only there), bound to its row by the cipher's context.
- ``icac_link_key`` / ``icac_ip_sighting``: what linking needs, as HMAC blind indexes.
- ``icac_cluster``: subject clusters of two tips or more (a lone tip is its own cluster).
- ``icac_hash_match``: which known list matched which file of a tip (no hash values).
- ``icac_quarantine``: refused reports: the reason, and the raw report ENCRYPTED (never for
  a report refused for carrying a file: those bytes are the file).
- ``icac_hash_set`` / ``icac_hash_set_entry``: known-hash lists (hashes and categories only).
- ``icac_tip_import``: import jobs, their progress and refusals.
- ``icac_tip_action``: the analysts' claims, releases and dispositions, in order.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

OPEN_STATUSES = ("queued", "claimed")


def _bigint_pk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(BIGINT_PK, primary_key=True, autoincrement=True)


class Tip(SQLModel, table=True):
    __tablename__ = "icac_tip"
    __table_args__ = (
        sa.UniqueConstraint("provider", "report_id", name="uq_icac_tip_report"),
        sa.Index("ix_icac_tip_queue", "status", "priority_rank", "received_at", "id"),
        sa.Index("ix_icac_tip_cluster", "cluster_id"),
        sa.Index("ix_icac_tip_province", "province_code"),
    )

    id: uuid.UUID = Field(primary_key=True)
    provider: str = Field(max_length=66)
    report_id: str = Field(max_length=128)
    version: int
    fingerprint: str = Field(max_length=64)
    current_version_id: uuid.UUID
    source: str = Field(max_length=16)
    incident_type: str = Field(max_length=64)
    annotations: str = Field(default="", max_length=200)
    provider_priority: str | None = Field(default=None, max_length=1)
    incident_at: datetime | None = Field(default=None, sa_type=TS)
    received_at: datetime = Field(sa_type=TS)
    updated_at: datetime = Field(sa_type=TS)
    victim_count: int = 0
    youngest_victim_age: int | None = None
    file_count: int = 0
    in_jurisdiction: bool = True
    country_code: str | None = Field(default=None, max_length=2)
    province_code: str | None = Field(default=None, max_length=2)
    home_indicators: str = Field(default="", max_length=200)
    foreign_countries: str = Field(default="", max_length=200)
    priority: str = Field(max_length=16)
    priority_rank: int
    score: int
    priority_floor: str | None = Field(default=None, max_length=16)
    reasons: str = Field(sa_type=sa.Text)  # JSON [[code, points], ...]
    hash_match_count: int = 0
    cluster_id: uuid.UUID
    status: str = Field(default="queued", max_length=16)
    claimed_by: str | None = Field(default=None, max_length=200)
    claimed_at: datetime | None = Field(default=None, sa_type=TS)
    disposition: str | None = Field(default=None, max_length=32)
    disposed_by: str | None = Field(default=None, max_length=200)
    disposed_at: datetime | None = Field(default=None, sa_type=TS)
    duplicate_of: uuid.UUID | None = None
    event_version: int = 0  # aggregate version of the tip's last event


class TipVersion(SQLModel, table=True):
    __tablename__ = "icac_tip_version"
    __table_args__ = (
        sa.UniqueConstraint("tip_id", "version", name="uq_icac_tip_version"),
        sa.UniqueConstraint("tip_id", "fingerprint", name="uq_icac_tip_version_fingerprint"),
    )

    id: uuid.UUID = Field(primary_key=True)
    tip_id: uuid.UUID = Field(foreign_key="icac_tip.id")
    version: int
    fingerprint: str = Field(max_length=64)
    received_at: datetime = Field(sa_type=TS)
    source: str = Field(max_length=16)
    provenance: str = Field(max_length=200)
    received_by: str | None = Field(default=None, max_length=200)
    report: str = Field(sa_type=sa.Text)  # enc1 token of the normalised report (JSON)


class LinkKey(SQLModel, table=True):
    """A blind index of an identifier (screen name, e-mail, phone, file hash) and the first
    tip that carried it; the tip's cluster is the identifier's cluster."""

    __tablename__ = "icac_link_key"

    key: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=16)
    tip_id: uuid.UUID


class IpSighting(SQLModel, table=True):
    """A blind index of an IP address, when it was seen, and in which tip."""

    __tablename__ = "icac_ip_sighting"
    __table_args__ = (sa.Index("ix_icac_ip_sighting_key_at", "ip_key", "at"),)

    id: int | None = Field(default=None, sa_column=_bigint_pk())
    ip_key: str = Field(max_length=32)
    at: datetime = Field(sa_type=TS)
    tip_id: uuid.UUID


class Cluster(SQLModel, table=True):
    __tablename__ = "icac_cluster"

    id: uuid.UUID = Field(primary_key=True)  # its oldest tip's id
    size: int
    linked_by: str = Field(default="", max_length=100)  # identifier kinds, comma-separated
    created_at: datetime = Field(sa_type=TS)
    updated_at: datetime = Field(sa_type=TS)


class HashMatchRow(SQLModel, table=True):
    __tablename__ = "icac_hash_match"
    __table_args__ = (sa.Index("ix_icac_hash_match_tip", "tip_id"),)

    id: int | None = Field(default=None, sa_column=_bigint_pk())
    tip_id: uuid.UUID = Field(foreign_key="icac_tip.id")
    file_index: int
    hash_set: str = Field(max_length=100)
    algorithm: str = Field(max_length=8)
    distance: int
    category: int | None = None


class Quarantine(SQLModel, table=True):
    __tablename__ = "icac_quarantine"
    __table_args__ = (sa.Index("ix_icac_quarantine_received", "received_at"),)

    id: uuid.UUID = Field(primary_key=True)
    received_at: datetime = Field(sa_type=TS)
    source: str = Field(max_length=16)
    provenance: str | None = Field(default=None, max_length=200)
    received_by: str | None = Field(default=None, max_length=200)
    import_id: uuid.UUID | None = None
    item_index: int | None = None
    location: str | None = Field(default=None, max_length=64)
    report_id: str | None = Field(default=None, max_length=128)
    reason_code: str = Field(max_length=32)
    reason: str = Field(sa_type=sa.Text)
    raw: str | None = Field(default=None, sa_type=sa.Text)  # enc1 token
    raw_omitted: str | None = Field(default=None, max_length=32)
    raw_sha256: str | None = Field(default=None, max_length=64)


class HashSetRow(SQLModel, table=True):
    __tablename__ = "icac_hash_set"

    id: uuid.UUID = Field(primary_key=True)
    name: str = Field(max_length=100, unique=True)
    format: str = Field(max_length=32)
    entry_count: int
    skipped: int
    problems: str = Field(default="[]", sa_type=sa.Text)  # JSON list; rows and fields only
    file_sha256: str = Field(max_length=64)
    uploaded_by: str = Field(max_length=200)
    uploaded_at: datetime = Field(sa_type=TS)
    revision: int = Field(sa_type=sa.BigInteger, unique=True)


class HashSetEntry(SQLModel, table=True):
    __tablename__ = "icac_hash_set_entry"
    __table_args__ = (sa.Index("ix_icac_hash_set_entry_set", "hash_set_id"),)

    id: int | None = Field(default=None, sa_column=_bigint_pk())
    hash_set_id: uuid.UUID = Field(foreign_key="icac_hash_set.id", ondelete="CASCADE")
    md5: str | None = Field(default=None, max_length=32)
    sha1: str | None = Field(default=None, max_length=40)
    pdq: str | None = Field(default=None, max_length=64)
    category: int | None = None


class TipImport(SQLModel, table=True):
    __tablename__ = "icac_tip_import"

    id: uuid.UUID = Field(primary_key=True)
    user: str = Field(sa_column=sa.Column("user_id", sa.String(200), nullable=False))
    started_at: datetime = Field(sa_type=TS)
    finished_at: datetime | None = Field(default=None, sa_type=TS)
    status: str = Field(max_length=16)  # scanning, storing, completed, refused, failed
    format: str | None = Field(default=None, max_length=16)
    bytes_read: int = Field(default=0, sa_type=sa.BigInteger)
    total: int | None = None
    done: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    refusal_code: str | None = Field(default=None, max_length=64)
    refusal_reason: str | None = Field(default=None, sa_type=sa.Text)


class TipAction(SQLModel, table=True):
    __tablename__ = "icac_tip_action"
    __table_args__ = (sa.Index("ix_icac_tip_action_tip", "tip_id", "id"),)

    id: int | None = Field(default=None, sa_column=_bigint_pk())
    tip_id: uuid.UUID = Field(foreign_key="icac_tip.id")
    action: str = Field(max_length=16)  # claim, release, dispose
    by: str = Field(sa_column=sa.Column("by_user", sa.String(200), nullable=False))
    at: datetime = Field(sa_type=TS)
    disposition: str | None = Field(default=None, max_length=32)
    duplicate_of: uuid.UUID | None = None
    previous_claimant: str | None = Field(default=None, max_length=200)
