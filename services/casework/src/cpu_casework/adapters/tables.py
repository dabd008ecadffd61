"""The tables of the casework store (created by migration ``casework_0003``).

Every table is prefixed ``case_`` (or is ``cases``) so the five services' models never clash
in one process. What each row may hold:

* ids: internal UUIDs (case, suspect, record rows), officers' user ids, and the pseudonyms other
  services put in their events (referral, child, tip, evidence item ids: ``ps_...``);
* codes, dates, counts;
* free text only as AES-GCM tokens (``*_enc`` columns), each bound to its table, column and
  row id (:func:`cpu_shared.security.crypto.field_context`): suspects' personal details and
  the officers' written reasons for transitions and reassignments.

Nothing here holds a child's name, a phone number or an address in clear; the casework service
never receives a child's name at all (intake keeps it).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

TZ = sa.DateTime(timezone=True)


def _json_list() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(sa.JSON(), nullable=False)


class CaseRow(SQLModel, table=True):
    """One case: the aggregate's scalar state, plus what lists and filters need."""

    __tablename__ = "cases"
    # The natural key of an opening: one case per referral or tip it was opened from.
    __table_args__ = (sa.UniqueConstraint("origin", "origin_id", name="uq_cases_origin"),)

    id: str = Field(primary_key=True, max_length=36)
    # pseudonym("case", id): the aggregate id of every event about this case.
    pseudonym: str = Field(max_length=64, unique=True)
    origin: str = Field(max_length=16)
    origin_id: str = Field(max_length=64)
    priority: str = Field(max_length=2)
    province_code: str | None = Field(default=None, max_length=2, index=True)
    opened_at: datetime = Field(sa_type=TZ)
    referral_received_at: datetime | None = Field(default=None, sa_type=TZ)
    concerns: list[str] = Field(sa_column=_json_list())
    teams: list[str] = Field(sa_column=_json_list())
    lead_team: str | None = Field(default=None, max_length=8, index=True)
    investigator_id: str | None = Field(default=None, max_length=200)
    status: str = Field(max_length=32, index=True)
    version: int
    cycle: int
    child_homicide: bool
    # Events published about this case so far: the aggregate_version of the next is this + 1.
    event_seq: int = 0
    updated_at: datetime = Field(sa_type=TZ)


class CaseTeamRow(SQLModel, table=True):
    """The teams on a case, one row each: what the record-level visibility rule filters on."""

    __tablename__ = "case_teams"

    case_id: str = Field(primary_key=True, foreign_key="cases.id", max_length=36)
    team: str = Field(primary_key=True, max_length=8, index=True)


class CaseChildRow(SQLModel, table=True):
    """A child on a case: the pseudonymous child id from intake, age in years and sex only."""

    __tablename__ = "case_children"

    case_id: str = Field(primary_key=True, foreign_key="cases.id", max_length=36)
    child_id: str = Field(primary_key=True, max_length=64)
    seq: int
    age_years: int | None = None
    sex: str = Field(max_length=8)
    referred_at: datetime = Field(sa_type=TZ)
    referral_id: str | None = Field(default=None, max_length=64)
    first_contact_at: datetime | None = Field(default=None, sa_type=TZ)
    first_contact_by: str | None = Field(default=None, max_length=200)


class CaseReferralRow(SQLModel, table=True):
    """A referral (intake's pseudonym) on a case: the one it was opened from, or linked.

    A referral is *active* on one case at most (a partial unique index). When intake later
    says a referral opened on its own case is the same child as another case's referral, it is
    linked to that case and its row here goes inactive (the first case keeps the history).
    ``same_child_as`` keeps intake's "same child as referral X" when X's case was not known
    yet, so that X joins this case when its own ``referral.triaged`` arrives (events of
    different referrals may arrive in any order).
    """

    __tablename__ = "case_referrals"
    __table_args__ = (
        sa.Index(
            "uq_case_referrals_active",
            "referral_id",
            unique=True,
            postgresql_where=sa.text("active"),
            sqlite_where=sa.text("active"),
        ),
    )

    case_id: str = Field(primary_key=True, foreign_key="cases.id", max_length=36)
    referral_id: str = Field(primary_key=True, max_length=64)
    seq: int
    is_origin: bool
    active: bool = True
    received_at: datetime = Field(sa_type=TZ)
    linked_at: datetime | None = Field(default=None, sa_type=TZ)
    linked_by: str | None = Field(default=None, max_length=200)
    same_child_as: str | None = Field(default=None, max_length=64, index=True)


class AssignmentRow(SQLModel, table=True):
    __tablename__ = "case_assignments"

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key="cases.id", max_length=36, index=True)
    seq: int
    team: str = Field(max_length=8)
    investigator_id: str | None = Field(default=None, max_length=200)
    province_code: str | None = Field(default=None, max_length=2)
    assigned_at: datetime = Field(sa_type=TZ)
    assigned_by: str = Field(max_length=200)
    reassignment: bool
    reason_code: str | None = Field(default=None, max_length=50)
    reason_text_enc: str | None = Field(default=None, sa_type=sa.Text)


class TransitionRow(SQLModel, table=True):
    __tablename__ = "case_transitions"

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key="cases.id", max_length=36, index=True)
    seq: int
    from_status: str = Field(max_length=32)
    to_status: str = Field(max_length=32)
    at: datetime = Field(sa_type=TZ)
    by: str = Field(max_length=200)
    reason_code: str = Field(max_length=50)
    reason_text_enc: str | None = Field(default=None, sa_type=sa.Text)
    cycle: int


class SuspectRow(SQLModel, table=True):
    """A suspect: an id, and every personal detail in one encrypted JSON document."""

    __tablename__ = "case_suspects"

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key="cases.id", max_length=36, index=True)
    seq: int
    details_enc: str = Field(sa_type=sa.Text)
    identified_at: datetime = Field(sa_type=TZ)
    identified_by: str = Field(max_length=200)


class ArrestRow(SQLModel, table=True):
    __tablename__ = "case_arrests"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "suspect_id", "arrested_on", "cycle", name="uq_arrest"),
    )

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key="cases.id", max_length=36, index=True)
    seq: int
    suspect_id: str = Field(foreign_key="case_suspects.id", max_length=36)
    arrested_on: date
    recorded_at: datetime = Field(sa_type=TZ)
    recorded_by: str = Field(max_length=200)
    cycle: int


class ChargeRow(SQLModel, table=True):
    __tablename__ = "case_charges"

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key="cases.id", max_length=36, index=True)
    seq: int
    suspect_id: str = Field(foreign_key="case_suspects.id", max_length=36)
    offence_codes: list[str] = Field(sa_column=_json_list())
    charged_on: date
    recorded_at: datetime = Field(sa_type=TZ)
    recorded_by: str = Field(max_length=200)
    cycle: int


class CourtOutcomeRow(SQLModel, table=True):
    __tablename__ = "case_court_outcomes"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "suspect_id", "cycle", name="uq_court_outcome"),
    )

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key="cases.id", max_length=36, index=True)
    seq: int
    suspect_id: str = Field(foreign_key="case_suspects.id", max_length=36)
    outcome: str = Field(max_length=16)
    offence_codes: list[str] = Field(sa_column=_json_list())
    sentence_years: int | None = None
    sentence_months: int | None = None
    decided_on: date
    recorded_at: datetime = Field(sa_type=TZ)
    recorded_by: str = Field(max_length=200)
    cycle: int


class VictimServiceRow(SQLModel, table=True):
    __tablename__ = "case_victim_services"
    __table_args__ = (
        sa.UniqueConstraint(
            "case_id", "child_id", "service", "provider_code", "provided_on", name="uq_service"
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    case_id: str = Field(foreign_key="cases.id", max_length=36, index=True)
    seq: int
    child_id: str = Field(max_length=64)
    service: str = Field(max_length=32)
    provider_code: str = Field(max_length=50)
    provided_on: date
    recorded_at: datetime = Field(sa_type=TZ)
    recorded_by: str = Field(max_length=200)


class FirstContactTaskRow(SQLModel, table=True):
    """The first-contact task of each child, as the domain computes it on every save."""

    __tablename__ = "case_first_contact_tasks"

    case_id: str = Field(primary_key=True, foreign_key="cases.id", max_length=36)
    child_id: str = Field(primary_key=True, max_length=64)
    team: str | None = Field(default=None, max_length=8)
    priority: str = Field(max_length=2)
    province_code: str | None = Field(default=None, max_length=2)
    received_at: datetime = Field(sa_type=TZ)
    due_at: datetime = Field(sa_type=TZ, index=True)
    contacted_at: datetime | None = Field(default=None, sa_type=TZ)
    case_closed: bool
    status: str = Field(max_length=16, index=True)


class EvidenceItemRow(SQLModel, table=True):
    """An evidence item forensics registered for a case (pseudonyms and codes only).

    Keyed by forensics' item pseudonym and linked to the case by the case's pseudonym, so an
    event arriving before anything else is known about the item is still kept.
    """

    __tablename__ = "case_evidence_items"

    item_id: str = Field(primary_key=True, max_length=64)
    case_pseudonym: str = Field(max_length=64, index=True)
    item_type: str | None = Field(default=None, max_length=32)
    parent_item_id: str | None = Field(default=None, max_length=64)
    collected_at: datetime | None = Field(default=None, sa_type=TZ)
    registered_at: datetime | None = Field(default=None, sa_type=TZ)
    # The latest custody movement applied (order guarded by claim_version).
    custody_kind: str | None = Field(default=None, max_length=32)
    custody_at: datetime | None = Field(default=None, sa_type=TZ)
    ledger_index: int | None = Field(default=None, sa_type=sa.BigInteger)
    disposed: bool = False


class EvidenceEventRow(SQLModel, table=True):
    """Each forensics event about an item of a case, for the case's timeline."""

    __tablename__ = "case_evidence_events"

    event_id: str = Field(primary_key=True, max_length=36)
    item_id: str = Field(max_length=64, index=True)
    case_pseudonym: str = Field(max_length=64, index=True)
    event_type: str = Field(max_length=64)
    code: str | None = Field(default=None, max_length=50)
    result_code: str | None = Field(default=None, max_length=50)
    analysis_id: str | None = Field(default=None, max_length=64)
    at: datetime = Field(sa_type=TZ)
    ledger_index: int | None = Field(default=None, sa_type=sa.BigInteger)


ALL_TABLES = (
    CaseRow,
    CaseTeamRow,
    CaseChildRow,
    CaseReferralRow,
    AssignmentRow,
    TransitionRow,
    SuspectRow,
    ArrestRow,
    ChargeRow,
    CourtOutcomeRow,
    VictimServiceRow,
    FirstContactTaskRow,
    EvidenceItemRow,
    EvidenceEventRow,
)
