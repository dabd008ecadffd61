"""The intake store: referrals, their children, blind-index digests, decisions, references.

Naming follows the full-stack-fastapi-template: ``ReferralBase`` (fields shared by the table and
what the API shows), ``Referral`` (the table), ``ReferralPublic`` and friends (responses, in
:mod:`cpu_intake.adapters.public`).

What is in clear and what is not
--------------------------------
Codes, dates of the referral's life, priority, status, counts and the officer's user id are in
clear: the unit filters and sorts on them, and they are what events carry anyway. Every
personal field is an ``enc1`` token (``FieldCipher``, AES-256-GCM, a data key per value) bound
to ``<table>.<column>#<row id>``, so a token copied into another row or column does not
decrypt: names in Latin and Khmer script, the date of birth, district, commune and village,
the reporter (name, phone, relationship), the alleged perpetrators, the narrative. Columns
holding tokens end in ``_enc``; :data:`ENCRYPTED_COLUMNS` lists them for key rotation.

Matching reads only :class:`MatchDigest`: keyed HMACs of normalised features, never plaintext.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

TZ = sa.DateTime(timezone=True)


class ReferralBase(SQLModel):
    """What anyone allowed to list referrals may see: codes, dates, priority, status."""

    reference: str = Field(max_length=20, sa_column_kwargs={"unique": True})
    source: str = Field(max_length=30)
    received_at: datetime = Field(sa_type=TZ)
    submitted_at: datetime = Field(sa_type=TZ)
    #: The day in Cambodia (UTC+7) the referral was recorded: "today's referrals".
    submitted_on: date
    status: str = Field(max_length=20)
    priority: str = Field(max_length=2)
    #: Codes joined by commas (teams such as "OVCS,HIT"; concern codes; fired triage rules).
    teams: str = Field(max_length=100)
    concerns: str = Field(max_length=400)
    rule_ids: str = Field(max_length=600)
    #: The first child's province: what lists filter on and events carry.
    province_code: str = Field(max_length=2)
    children_count: int
    immediate_danger: bool
    injuries: bool


class Referral(ReferralBase, table=True):
    __tablename__ = "referral"
    __table_args__ = (
        sa.Index("ix_referral_submitted_on_priority", "submitted_on", "priority"),
        sa.Index("ix_referral_submitted_at", "submitted_at", "id"),
        sa.Index("ix_referral_status", "status"),
        sa.Index("ix_referral_province_code", "province_code"),
        sa.CheckConstraint("priority IN ('P1', 'P2', 'P3')", name="ck_referral_priority"),
        sa.CheckConstraint(
            "status IN ('submitted', 'triaged', 'linked', 'case_opened', 'withdrawn')",
            name="ck_referral_status",
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    #: The referral's pseudonym: the aggregate id of its events, so events from other
    #: services (case.opened) can be traced back to it.
    pseudonym: str = Field(max_length=40, sa_column_kwargs={"unique": True})
    submitted_by: str = Field(max_length=200)
    rules_version: int
    reporter_anonymous: bool
    reporter_enc: str | None = Field(default=None, sa_type=sa.Text)
    perpetrators_enc: str = Field(sa_type=sa.Text)
    narrative_enc: str = Field(sa_type=sa.Text)
    same_child_as_id: uuid.UUID | None = Field(default=None, foreign_key="referral.id")
    #: True while ``referral.triaged`` waits for the officer's match decisions.
    match_decision_pending: bool = False
    #: When ``referral.triaged`` last went into the outbox (None: not yet).
    triaged_published_at: datetime | None = Field(default=None, sa_type=TZ)
    withdrawal_reason: str | None = Field(default=None, max_length=50)
    case_id: str | None = Field(default=None, max_length=64)
    #: The aggregate's version; every change checks and bumps it (optimistic concurrency).
    version: int


class ReferralChild(SQLModel, table=True):
    __tablename__ = "referral_child"
    __table_args__ = (sa.UniqueConstraint("referral_id", "position"),)

    id: uuid.UUID = Field(primary_key=True)
    referral_id: uuid.UUID = Field(foreign_key="referral.id", index=True)
    position: int
    sex: str = Field(max_length=10)
    #: Age in completed years on the day received (from the date of birth or the estimate).
    age_years: int | None = None
    age_estimate: int | None = None
    province_code: str = Field(max_length=2)
    given_name_enc: str | None = Field(default=None, sa_type=sa.Text)
    family_name_enc: str | None = Field(default=None, sa_type=sa.Text)
    name_km_enc: str | None = Field(default=None, sa_type=sa.Text)
    date_of_birth_enc: str | None = Field(default=None, sa_type=sa.Text)
    district_enc: str | None = Field(default=None, sa_type=sa.Text)
    commune_enc: str | None = Field(default=None, sa_type=sa.Text)
    village_enc: str | None = Field(default=None, sa_type=sa.Text)
    #: How many digests of each matching kind the child has ("name_full=3,sex=1,..."): with
    #: the digests a candidate shares with a new referral, enough to score it exactly
    #: without reading all of its digests.
    digest_counts: str = Field(default="", sa_type=sa.Text)


class MatchDigest(SQLModel, table=True):
    """One blind-index digest of one matching feature of one child."""

    __tablename__ = "referral_match_digest"
    # Candidate search reads this index alone ("which referrals share these digests, with
    # which kinds?"), never the table.
    __table_args__ = (sa.Index("ix_referral_match_digest_digest", "digest", "referral_id", "kind"),)

    referral_id: uuid.UUID = Field(foreign_key="referral.id", primary_key=True)
    child_position: int = Field(primary_key=True)
    kind: str = Field(max_length=30, primary_key=True)
    digest: str = Field(max_length=64, primary_key=True)


class ReferralMatchDecision(SQLModel, table=True):
    """The officer's decision on one candidate, with the score and reasons they were shown."""

    __tablename__ = "referral_match_decision"
    __table_args__ = (
        sa.CheckConstraint(
            "decision IN ('same_child', 'new_child')", name="ck_referral_match_decision"
        ),
    )

    referral_id: uuid.UUID = Field(foreign_key="referral.id", primary_key=True)
    candidate_referral_id: uuid.UUID = Field(foreign_key="referral.id", primary_key=True)
    decision: str = Field(max_length=20)
    score: float | None = None
    reasons: str = Field(default="", max_length=300)
    decided_by: str = Field(max_length=200)
    decided_at: datetime = Field(sa_type=TZ)


class ReferralStatusChange(SQLModel, table=True):
    """The referral's history: each status it took, when, by whom, why."""

    __tablename__ = "referral_status_change"

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    referral_id: uuid.UUID = Field(foreign_key="referral.id", index=True)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    at: datetime = Field(sa_type=TZ)
    by: str = Field(max_length=200)
    reason_code: str | None = Field(default=None, max_length=50)


class ReferenceSequence(SQLModel, table=True):
    """The last reference number given out per year (REF-<year>-<number>)."""

    __tablename__ = "referral_reference_sequence"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last_value: int


#: Every column holding ``enc1`` tokens, by table (for ``rewrap_column`` on key rotation).
ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "referral": ("reporter_enc", "perpetrators_enc", "narrative_enc"),
    "referral_child": (
        "given_name_enc",
        "family_name_enc",
        "name_km_enc",
        "date_of_birth_enc",
        "district_enc",
        "commune_enc",
        "village_enc",
    ),
}
