"""The referral repository: the only code that reads or writes intake's referral tables.

It encrypts every personal field on the way in (:class:`RecordProtection`, context bound to
table, column and row id) and decrypts on the way out, stores the blind-index digests of the
children's matching features, hands out gapless yearly references, and finds duplicate
candidates by digest: no query here ever compares plaintext.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_intake.adapters.protection import RecordProtection
from cpu_intake.adapters.tables import (
    MatchDigest,
    ReferenceSequence,
    Referral,
    ReferralChild,
    ReferralMatchDecision,
    ReferralStatusChange,
)
from cpu_intake.domain import referral as domain
from cpu_intake.domain.decisions import MatchDecision, MatchDecisionKind
from cpu_intake.domain.matching import (
    DEFAULT_WEIGHTS,
    CandidateChildren,
    FeatureKind,
    MatchFeatures,
)
from cpu_intake.domain.triage import TriageResult
from cpu_shared.messaging.envelope import EventEnvelope, utcnow
from cpu_shared.messaging.tables import OutboxMessage
from cpu_shared.security.audit import AuditEntry

REFERRAL = Referral.__table__  # type: ignore[attr-defined]
CHILD = ReferralChild.__table__  # type: ignore[attr-defined]
DIGEST = MatchDigest.__table__  # type: ignore[attr-defined]
DECISION = ReferralMatchDecision.__table__  # type: ignore[attr-defined]
STATUS_CHANGE = ReferralStatusChange.__table__  # type: ignore[attr-defined]
SEQUENCE = ReferenceSequence.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
AUDIT = AuditEntry.__table__  # type: ignore[attr-defined]

#: Feature kinds a candidate must share at least one digest of to be scored at all. Without
#: one of them the domain's weights cannot reach the match threshold (a unit test proves it
#: from the weights), so this pre-selection loses no match; the common kinds (province, sex,
#: birth year, single name tokens) would make every search read half the store.
BLOCKING_KINDS: frozenset[str] = frozenset(
    {
        FeatureKind.NAME_FULL,
        FeatureKind.NAME_FUZZY,
        FeatureKind.NAME_PHONETIC,
        FeatureKind.NAME_KM,
        FeatureKind.NAME_KM_SKELETON,
        FeatureKind.DOB,
        FeatureKind.VILLAGE,
        FeatureKind.REPORTER_PHONE,
    }
)


#: How strongly sharing a digest of each blocking kind suggests the same child (the domain's
#: weights): the candidates with the most evidence are scored first when there are many.
BLOCKING_EVIDENCE: dict[str, float] = {
    FeatureKind.NAME_FULL: DEFAULT_WEIGHTS.name_exact,
    FeatureKind.NAME_KM: DEFAULT_WEIGHTS.name_km,
    FeatureKind.DOB: DEFAULT_WEIGHTS.dob_exact,
    FeatureKind.NAME_FUZZY: DEFAULT_WEIGHTS.name_fuzzy,
    FeatureKind.NAME_PHONETIC: DEFAULT_WEIGHTS.phonetic,
    FeatureKind.NAME_KM_SKELETON: DEFAULT_WEIGHTS.name_km_skeleton,
    FeatureKind.VILLAGE: DEFAULT_WEIGHTS.village,
    FeatureKind.REPORTER_PHONE: DEFAULT_WEIGHTS.reporter_phone,
}
assert set(BLOCKING_EVIDENCE) == BLOCKING_KINDS


def encode_counts(features: MatchFeatures) -> str:
    return ",".join(f"{kind}={len(features[kind])}" for kind in sorted(features))


def decode_counts(text: str) -> dict[str, int]:
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {kind: int(count) for kind, _, count in pairs}


@dataclass(frozen=True, slots=True)
class StoredReferral:
    """What events need of a referral just stored (the same names as :class:`Referral`)."""

    id: uuid.UUID
    pseudonym: str
    source: str
    received_at: datetime
    concerns: str
    priority: str
    teams: str
    rule_ids: str
    province_code: str


@dataclass(frozen=True, slots=True)
class StoredChild:
    """What events need of a child just stored (the same names as :class:`ReferralChild`)."""

    id: uuid.UUID
    position: int
    sex: str
    age_years: int | None
    province_code: str


class StaleReferral(Exception):
    """The referral changed since it was read (its version moved on)."""


def utc(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; they were stored in UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def codes(text: str) -> list[str]:
    return [code for code in text.split(",") if code]


@dataclass(frozen=True)
class ListFilters:
    """What a list of referrals may be filtered on: codes and dates only, never a name."""

    status: str | None = None
    priority: str | None = None
    source: str | None = None
    province_code: str | None = None
    team: str | None = None
    concern: str | None = None
    reference: str | None = None
    submitted_on: date | None = None
    submitted_from: date | None = None
    submitted_to: date | None = None
    match_decision_pending: bool | None = None
    order: str = "priority"  # "priority" (P1 first, longest waiting first) or "newest"
    limit: int = 50
    offset: int = 0
    #: The caller's provinces (from the token); empty: no restriction.
    provinces: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class ChildDetails:
    id: uuid.UUID
    position: int
    given_name: str | None
    family_name: str | None
    name_km: str | None
    sex: str
    date_of_birth: date | None
    age_estimate: int | None
    age_years: int | None
    province_code: str
    district: str | None
    commune: str | None
    village: str | None


@dataclass(frozen=True)
class ReferralDetails:
    """A referral with its personal fields decrypted: only for a caller allowed to read it."""

    row: Referral
    reporter: dict[str, Any]
    perpetrators: list[dict[str, Any]]
    narrative: str
    children: list[ChildDetails]
    decisions: list[ReferralMatchDecision]


@dataclass(frozen=True)
class Candidate:
    referral_id: uuid.UUID
    reference: str
    children: Sequence[dict[str, frozenset[str]]]


class ReferralRepository:
    """Referral storage over one session (the caller's transaction)."""

    def __init__(self, session: AsyncSession, protection: RecordProtection) -> None:
        self.session = session
        self.protection = protection
        self._asyncpg: Any = None

    @property
    def dialect(self) -> str:
        bind = self.session.bind
        assert bind is not None, "intake sessions are bound to the service's engine"
        return bind.dialect.name

    @property
    def _statements(self) -> dict[str, sa.Select[Any]]:
        return _CANDIDATE_STATEMENTS[self.dialect == "postgresql"]

    async def _rows(self, statement: Any, parameters: Mapping[str, Any]) -> Sequence[Any]:
        """The rows of one of this module's fixed statements, as tuples.

        On PostgreSQL straight through asyncpg, in the session's transaction on the session's
        connection: the statement is compiled once per process and prepared once per
        connection (asyncpg's statement cache), and none of SQLAlchemy's per-execution work
        (cache key, parameter and result processing, a greenlet switch) is done. Submitting
        a referral runs six of them; the ORM's share of that was more than the database's.
        """
        if self.dialect != "postgresql":
            return list((await self.session.execute(statement, parameters)).all())
        compiled = _asyncpg_statement(statement)
        connection = await self._driver_connection()
        return await connection.fetch(compiled.sql, *compiled.arguments(parameters))

    async def _driver_connection(self) -> Any:
        """The asyncpg connection of the session's transaction, that transaction begun (as
        SQLAlchemy's asyncpg adapter begins it on a first statement: the session's commit
        or rollback then ends it)."""
        if self._asyncpg is None:
            connection = await self.session.connection()
            adapted: Any = (await connection.get_raw_connection()).dbapi_connection
            if adapted._transaction is None:
                await adapted._start_transaction()
            self._asyncpg = adapted.driver_connection
        return self._asyncpg

    async def lock_for_write(self) -> None:
        """On SQLite, take the database's write lock now, so that what this transaction reads
        next cannot change before it writes (PostgreSQL uses row locks instead)."""
        if self.dialect == "sqlite":
            await self.session.execute(
                sa.update(SEQUENCE).where(sa.false()).values(last_value=SEQUENCE.c.last_value)
            )

    # --- references ------------------------------------------------------------------------------

    async def next_reference(self, year: int) -> str:
        """The next reference of ``year``: one atomic upsert, so concurrent submissions never
        share a number, and in the caller's transaction, so a rolled-back submission leaves
        no gap. The row stays locked until commit: call this late in the transaction."""
        ((sequence,),) = await self._rows(_next_sequence(self.dialect), {"year": year})
        return domain.format_reference(year, sequence)

    # --- writing -----------------------------------------------------------------------------

    async def add(
        self,
        referral: domain.Referral,
        *,
        pseudonym: str,
        child_ids: Sequence[uuid.UUID],
        digests: Sequence[MatchFeatures],
        match_decision_pending: bool,
        triaged_published_at: datetime | None,
        events: Callable[
            [StoredReferral, list[StoredChild]], Sequence[tuple[str, EventEnvelope]]
        ] = lambda _referral, _children: (),
        audit: Mapping[str, Any] | None = None,
    ) -> tuple[StoredReferral, list[StoredChild]]:
        """Insert a new, triaged referral with its children, digests and first history, the
        outbox rows of the ``events`` announcing it (topic and envelope, in order) and its
        ``audit`` row (:func:`cpu_shared.security.audit.audit_values`), all in the caller's
        transaction.

        Plain INSERTs (no ORM objects): this is the hot path of every submission. On
        PostgreSQL it is one statement, one round trip."""
        details, triage = referral.details, referral.triage
        assert details is not None and triage is not None, "a new referral is triaged in full"
        seal, seal_json, rid = self.protection.seal, self.protection.seal_json, referral.id
        reporter = details.reporter
        received_on = details.received_on
        stored = StoredReferral(
            id=rid,
            pseudonym=pseudonym,
            source=details.source,
            received_at=details.received_at,
            concerns=",".join(details.concerns),
            priority=triage.priority,
            teams=",".join(triage.teams),
            rule_ids=",".join(triage.rule_ids),
            province_code=details.children[0].province_code,
        )
        reporter_enc = None
        if not reporter.anonymous:
            reporter_enc = seal_json(
                "referral",
                "reporter_enc",
                rid,
                {
                    "name": reporter.name,
                    "phone": reporter.phone,
                    "relationship": reporter.relationship,
                },
            )
        referral_row = dict(
            id=rid,
            reference=referral.reference,
            pseudonym=pseudonym,
            source=stored.source,
            received_at=stored.received_at,
            submitted_at=referral.submitted_at,
            submitted_on=domain.cambodia_date(referral.submitted_at),
            submitted_by=referral.submitted_by,
            status=referral.status.value,
            priority=stored.priority,
            teams=stored.teams,
            concerns=stored.concerns,
            rule_ids=stored.rule_ids,
            rules_version=triage.rules_version,
            province_code=stored.province_code,
            children_count=len(details.children),
            immediate_danger=details.immediate_danger,
            injuries=details.injuries,
            reporter_anonymous=reporter.anonymous,
            reporter_enc=reporter_enc,
            perpetrators_enc=seal_json(
                "referral",
                "perpetrators_enc",
                rid,
                [p.model_dump(mode="json") for p in details.alleged_perpetrators],
            ),
            narrative_enc=seal("referral", "narrative_enc", rid, details.narrative),
            same_child_as_id=None,
            match_decision_pending=match_decision_pending,
            triaged_published_at=triaged_published_at,
            withdrawal_reason=None,
            case_id=None,
            version=referral.version,
        )
        children, rows = [], []
        for position, (child, cid, features) in enumerate(
            zip(details.children, child_ids, digests, strict=True)
        ):
            dob = child.date_of_birth.isoformat() if child.date_of_birth else None
            age = child.age_on(received_on)
            children.append(StoredChild(cid, position, child.sex, age, child.province_code))
            rows.append(
                {
                    "id": cid,
                    "referral_id": rid,
                    "position": position,
                    "sex": child.sex,
                    "age_years": age,
                    "age_estimate": child.age_estimate,
                    "province_code": child.province_code,
                    "given_name_enc": seal(
                        "referral_child", "given_name_enc", cid, child.given_name
                    ),
                    "family_name_enc": seal(
                        "referral_child", "family_name_enc", cid, child.family_name
                    ),
                    "name_km_enc": seal("referral_child", "name_km_enc", cid, child.name_km),
                    "date_of_birth_enc": seal("referral_child", "date_of_birth_enc", cid, dob),
                    "district_enc": seal("referral_child", "district_enc", cid, child.district),
                    "commune_enc": seal("referral_child", "commune_enc", cid, child.commune),
                    "village_enc": seal("referral_child", "village_enc", cid, child.village),
                    "digest_counts": encode_counts(features),
                }
            )
        digest_rows = [
            {"referral_id": rid, "child_position": position, "kind": kind, "digest": digest}
            for position, features in enumerate(digests)
            for kind, digest in features.pairs()
        ]
        history_rows = _history_rows(rid, referral.history)
        outbox_rows = [outbox_row(topic, envelope) for topic, envelope in events(stored, children)]
        audit_row = None if audit is None else _audit_row(audit)
        if self.dialect == "postgresql":
            parameters = {f"referral__{name}": value for name, value in referral_row.items()}
            for table, table_rows in (
                (CHILD, rows),
                (DIGEST, digest_rows),
                (STATUS_CHANGE, history_rows),
                (OUTBOX, outbox_rows),
            ):
                for name in _UNNEST_COLUMNS[table.name]:
                    parameters[f"{table.name}__{name}"] = [row[name] for row in table_rows]
            if audit_row is not None:
                parameters |= {f"audit_log__{name}": value for name, value in audit_row.items()}
            await self._rows(_add_referral_statement(audit_row is not None), parameters)
        else:
            await self.session.execute(sa.insert(REFERRAL).values(referral_row))
            for table, table_rows in (
                (CHILD, rows),
                (DIGEST, digest_rows),
                (STATUS_CHANGE, history_rows),
                (OUTBOX, outbox_rows),
            ):
                if table_rows:
                    await self.session.execute(sa.insert(table), table_rows)
            if audit_row is not None:
                await self.session.execute(sa.insert(AUDIT).values(audit_row))
        return stored, children

    async def _add_history(self, referral_id: uuid.UUID, changes: Iterable[Any]) -> None:
        rows = _history_rows(referral_id, changes)
        if rows:
            await self.session.execute(sa.insert(STATUS_CHANGE), rows)

    async def save_change(
        self,
        row: Referral,
        referral: domain.Referral,
        *,
        decision: MatchDecision | None = None,
        decision_score: float | None = None,
        decision_reasons: Sequence[str] = (),
        **columns: Any,
    ) -> None:
        """Write what a domain method changed, if the row still has the version that was read
        (else :class:`StaleReferral`): status, version, new history, a new decision, and any
        bookkeeping ``columns``. The aggregate came from :meth:`aggregate`, which loads no
        history, so everything in its history is new."""
        values = {
            "status": referral.status.value,
            "version": referral.version,
            "same_child_as_id": referral.same_child_as,
            "withdrawal_reason": referral.withdrawal_reason,
            **columns,
        }
        result = await self.session.execute(
            sa.update(REFERRAL)
            .where(REFERRAL.c.id == row.id, REFERRAL.c.version == row.version)
            .values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleReferral(str(row.id))
        if decision is not None:
            await self.session.execute(
                sa.insert(DECISION).values(
                    referral_id=decision.referral_id,
                    candidate_referral_id=decision.candidate_referral_id,
                    decision=decision.decision.value,
                    score=decision_score,
                    reasons=",".join(decision_reasons),
                    decided_by=decision.decided_by,
                    decided_at=decision.decided_at,
                )
            )
        await self._add_history(row.id, referral.history)

    async def mark_released(self, row: Referral, *, at: datetime) -> None:
        """Record that the held ``referral.triaged`` went out (no change of status)."""
        result = await self.session.execute(
            sa.update(REFERRAL)
            .where(REFERRAL.c.id == row.id, REFERRAL.c.version == row.version)
            .values(match_decision_pending=False, triaged_published_at=at)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleReferral(str(row.id))

    # --- reading -----------------------------------------------------------------------------

    async def get(self, referral_id: uuid.UUID, *, for_update: bool = False) -> Referral | None:
        """The referral's row (codes and tokens; nothing decrypted)."""
        statement = sa.select(Referral).where(REFERRAL.c.id == referral_id)
        if for_update:
            # Current values even if this session read the row before the lock was taken.
            statement = statement.execution_options(populate_existing=True)
            if self.dialect == "postgresql":
                statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def get_by_pseudonym(
        self, pseudonym: str, *, for_update: bool = False
    ) -> Referral | None:
        """The referral whose events carry ``pseudonym`` as their aggregate id."""
        statement = sa.select(Referral).where(REFERRAL.c.pseudonym == pseudonym)
        if for_update:
            statement = statement.execution_options(populate_existing=True)
            if self.dialect == "postgresql":
                statement = statement.with_for_update()
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def children(self, referral_id: uuid.UUID) -> list[ReferralChild]:
        statement = (
            sa.select(ReferralChild)
            .where(CHILD.c.referral_id == referral_id)
            .order_by(CHILD.c.position)
        )
        return list((await self.session.execute(statement)).scalars().all())

    async def decisions(self, referral_id: uuid.UUID) -> list[ReferralMatchDecision]:
        statement = (
            sa.select(ReferralMatchDecision)
            .where(DECISION.c.referral_id == referral_id)
            .order_by(DECISION.c.decided_at)
        )
        return list((await self.session.execute(statement)).scalars().all())

    async def aggregate(self, row: Referral) -> domain.Referral:
        """The aggregate as its rules need it, without decrypting any personal field."""
        decisions = [
            MatchDecision(
                referral_id=d.referral_id,
                candidate_referral_id=d.candidate_referral_id,
                decision=MatchDecisionKind(d.decision),
                decided_by=d.decided_by,
                decided_at=utc(d.decided_at),
            )
            for d in await self.decisions(row.id)
        ]
        return domain.Referral(
            id=row.id,
            reference=row.reference,
            details=None,
            submitted_by=row.submitted_by,
            submitted_at=utc(row.submitted_at),
            status=domain.ReferralStatus(row.status),
            triage=TriageResult(
                priority=row.priority,  # type: ignore[arg-type]
                teams=tuple(codes(row.teams)),  # type: ignore[arg-type]
                rule_ids=tuple(codes(row.rule_ids)),
                rules_version=row.rules_version,
            ),
            same_child_as=row.same_child_as_id,
            case_id=row.case_id,
            withdrawal_reason=row.withdrawal_reason,
            match_decisions=decisions,
            version=row.version,
        )

    async def details(self, row: Referral) -> ReferralDetails:
        """Decrypt every personal field of the referral (the caller audits the read)."""
        open_, rid = self.protection.open, row.id
        children = []
        for child in await self.children(rid):
            cid = child.id
            dob = open_("referral_child", "date_of_birth_enc", cid, child.date_of_birth_enc)
            children.append(
                ChildDetails(
                    id=cid,
                    position=child.position,
                    given_name=open_("referral_child", "given_name_enc", cid, child.given_name_enc),
                    family_name=open_(
                        "referral_child", "family_name_enc", cid, child.family_name_enc
                    ),
                    name_km=open_("referral_child", "name_km_enc", cid, child.name_km_enc),
                    sex=child.sex,
                    date_of_birth=date.fromisoformat(dob) if dob else None,
                    age_estimate=child.age_estimate,
                    age_years=child.age_years,
                    province_code=child.province_code,
                    district=open_("referral_child", "district_enc", cid, child.district_enc),
                    commune=open_("referral_child", "commune_enc", cid, child.commune_enc),
                    village=open_("referral_child", "village_enc", cid, child.village_enc),
                )
            )
        reporter = self.protection.open_json("referral", "reporter_enc", rid, row.reporter_enc)
        return ReferralDetails(
            row=row,
            reporter=reporter or {},
            perpetrators=self.protection.open_json(
                "referral", "perpetrators_enc", rid, row.perpetrators_enc
            ),
            narrative=open_("referral", "narrative_enc", rid, row.narrative_enc) or "",
            children=children,
            decisions=await self.decisions(rid),
        )

    async def list(self, filters: ListFilters) -> tuple[list[Referral], int]:
        """One page of referrals matching ``filters``, and how many match in all."""
        c = REFERRAL.c
        conditions: list[Any] = []
        for column, value in (
            (c.status, filters.status),
            (c.priority, filters.priority),
            (c.source, filters.source),
            (c.province_code, filters.province_code),
            (c.reference, filters.reference),
            (c.submitted_on, filters.submitted_on),
            (c.match_decision_pending, filters.match_decision_pending),
        ):
            if value is not None:
                conditions.append(column == value)
        if filters.submitted_from is not None:
            conditions.append(c.submitted_on >= filters.submitted_from)
        if filters.submitted_to is not None:
            conditions.append(c.submitted_on <= filters.submitted_to)
        for column, code in ((c.teams, filters.team), (c.concerns, filters.concern)):
            if code is not None:  # codes are stored comma-joined: match a whole code only
                conditions.append(("," + column + ",").contains(f",{code},", autoescape=True))
        if filters.provinces:
            conditions.append(c.province_code.in_(sorted(filters.provinces)))
        where = sa.and_(sa.true(), *conditions)
        if filters.order == "newest":
            order = [c.submitted_at.desc(), c.id.desc()]
        else:
            order = [c.priority.asc(), c.submitted_at.asc(), c.id.asc()]
        page = (
            sa.select(Referral)
            .where(where)
            .order_by(*order)
            .limit(filters.limit)
            .offset(filters.offset)
        )
        rows = list((await self.session.execute(page)).scalars().all())
        total = (
            await self.session.execute(
                sa.select(sa.func.count()).select_from(REFERRAL).where(where)
            )
        ).scalar_one()
        return rows, int(total)

    # --- matching on digests -------------------------------------------------------------------

    async def held_for_candidate(self, referral_id: uuid.UUID) -> list[uuid.UUID]:
        """Referrals waiting for a match decision that share a blocking digest with
        ``referral_id`` (those of which it may be a candidate)."""
        digests = [
            digest
            for child in await self.stored_digests(referral_id)
            for kind, values in child.items()
            if kind in BLOCKING_KINDS
            for digest in values
        ]
        if not digests:
            return []
        statements = self._statements
        sharing = {
            rid
            for rid, _ in await self.session.execute(statements["sharing"], {"digests": digests})
        }
        sharing.discard(referral_id)
        if not sharing:
            return []
        result = await self.session.execute(statements["held"], {"ids": sorted(sharing)})
        return list(result.scalars().all())

    async def stored_digests(self, referral_id: uuid.UUID) -> list[dict[str, frozenset[str]]]:
        """The digests of a stored referral's children, per child, per kind."""
        result = await self.session.execute(
            sa.select(DIGEST.c.child_position, DIGEST.c.kind, DIGEST.c.digest).where(
                DIGEST.c.referral_id == referral_id
            )
        )
        grouped: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for position, kind, digest in result.all():
            grouped[position][kind].add(digest)
        return [
            {kind: frozenset(values) for kind, values in grouped[position].items()}
            for position in sorted(grouped)
        ]

    async def candidates(
        self,
        probe: Sequence[Mapping[str, frozenset[str]]],
        *,
        before: tuple[datetime, uuid.UUID],
        limit: int,
    ) -> list[Candidate]:
        """Earlier referrals (submitted before ``before``, not withdrawn) that share at least
        one blocking digest with ``probe``: the ``limit`` with the most evidence, each with
        token sets that score exactly as its real digests would.

        Only what the domain's scorer looks at is read: the candidate's digests that are
        also the probe's, and how many digests of each kind the candidate has. Its other
        digests are stood in for by placeholders that match nothing, so intersections,
        subsets and emptiness - all the scorer uses - are those of the real sets.
        """
        blocking = sorted(
            {
                d
                for child in probe
                for kind, ds in child.items()
                if kind in BLOCKING_KINDS
                for d in ds
            }
        )
        if not blocking:
            return []
        submitted_at, referral_id = before
        # Two plain look-ups rather than one join: the digest index alone says who shares
        # what (an index-only scan), the primary key says which of those are eligible. A
        # join lets the planner, misled by the skew of digest frequencies, scan every
        # referral instead.
        evidence: dict[uuid.UUID, dict[str, float]] = defaultdict(dict)
        statements = self._statements
        for rid, kind in await self._rows(statements["sharing"], {"digests": blocking}):
            if rid != referral_id:
                evidence[rid][kind] = BLOCKING_EVIDENCE.get(kind, 0.0)
        if not evidence:
            return []
        strongest = sorted(evidence, key=lambda rid: (-sum(evidence[rid].values()), str(rid)))
        eligible = await self._rows(
            statements["eligible"],
            {"ids": strongest[: 2 * limit], "before_at": submitted_at, "before_id": referral_id},
        )
        references: dict[uuid.UUID, str] = {rid: reference for rid, reference in eligible}
        ids = [rid for rid in strongest if rid in references][:limit]
        if not ids:
            return []
        every = sorted({digest for child in probe for ds in child.values() for digest in ds})
        shared: dict[tuple[uuid.UUID, int, str], set[str]] = defaultdict(set)
        for rid, position, kind, digest in await self._rows(
            statements["shared"], {"ids": ids, "digests": every}
        ):
            shared[(rid, position, kind)].add(digest)
        children: dict[uuid.UUID, list[dict[str, frozenset[str]]]] = defaultdict(list)
        for rid, position, counts in await self._rows(statements["digest_counts"], {"ids": ids}):
            tokens = {}
            for kind, count in decode_counts(counts).items():
                real = shared.get((rid, position, kind), set())
                stand_ins = {f"~{i}" for i in range(count - len(real))}
                tokens[kind] = frozenset(real | stand_ins)
            children[rid].append(tokens)
        return [Candidate(rid, references[rid], children[rid]) for rid in ids]


def _one_of(column: sa.Column[Any], name: str, postgres: bool) -> sa.ColumnElement[bool]:
    """``column`` is one of the list parameter ``name``. On PostgreSQL ``= ANY(<array>)``: one
    SQL text whatever the list's length, so the statement is prepared once per connection (an
    ``IN`` list of varying length is a new statement, parsed and planned, nearly every time)."""
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


def _candidate_statements(postgres: bool) -> dict[str, sa.Select[Any]]:
    """The candidate search's statements, built once per dialect."""
    return {
        "sharing": sa.select(DIGEST.c.referral_id, DIGEST.c.kind)
        .where(_one_of(DIGEST.c.digest, "digests", postgres))
        .distinct(),
        "eligible": sa.select(REFERRAL.c.id, REFERRAL.c.reference).where(
            _one_of(REFERRAL.c.id, "ids", postgres),
            REFERRAL.c.status != domain.ReferralStatus.WITHDRAWN.value,
            sa.or_(
                REFERRAL.c.submitted_at < sa.bindparam("before_at"),
                sa.and_(
                    REFERRAL.c.submitted_at == sa.bindparam("before_at"),
                    REFERRAL.c.id < sa.bindparam("before_id"),
                ),
            ),
        ),
        "shared": sa.select(
            DIGEST.c.referral_id, DIGEST.c.child_position, DIGEST.c.kind, DIGEST.c.digest
        ).where(
            _one_of(DIGEST.c.referral_id, "ids", postgres),
            _one_of(DIGEST.c.digest, "digests", postgres),
        ),
        "digest_counts": sa.select(CHILD.c.referral_id, CHILD.c.position, CHILD.c.digest_counts)
        .where(_one_of(CHILD.c.referral_id, "ids", postgres))
        .order_by(CHILD.c.referral_id, CHILD.c.position),
        "held": sa.select(REFERRAL.c.id)
        .where(_one_of(REFERRAL.c.id, "ids", postgres), REFERRAL.c.match_decision_pending)
        .order_by(REFERRAL.c.submitted_at, REFERRAL.c.id),
    }


_CANDIDATE_STATEMENTS = {True: _candidate_statements(True), False: _candidate_statements(False)}


def _next_sequence(dialect: str) -> sa.Insert:
    """The yearly counter's upsert (built once per dialect; ``year`` is its parameter)."""
    return _NEXT_SEQUENCE[dialect == "postgresql"]


def _build_next_sequence(insert: Any) -> sa.Insert:
    return (
        insert(SEQUENCE)
        .values(year=sa.bindparam("year"), last_value=1)
        .on_conflict_do_update(
            index_elements=[SEQUENCE.c.year], set_={"last_value": SEQUENCE.c.last_value + 1}
        )
        .returning(SEQUENCE.c.last_value)
    )


_NEXT_SEQUENCE = {
    True: _build_next_sequence(postgresql.insert),
    False: _build_next_sequence(sqlite.insert),
}

_UNNEST_COLUMNS: dict[str, tuple[str, ...]] = {
    "referral_child": tuple(c.name for c in CHILD.c),
    "referral_match_digest": tuple(c.name for c in DIGEST.c),
    "referral_status_change": tuple(c.name for c in STATUS_CHANGE.c if c.name != "id"),
    "outbox": ("event_id", "topic", "message_key", "payload", "created_at"),
}


def outbox_row(topic: str, envelope: EventEnvelope) -> dict[str, Any]:
    """The outbox row :func:`cpu_shared.messaging.outbox.enqueue` adds for ``envelope``, as
    plain values (a test holds the two equal)."""
    return {
        "event_id": envelope.event_id,
        "topic": topic,
        "message_key": envelope.aggregate_id,
        "payload": envelope.to_bytes(),
        "created_at": utcnow(),
        "sent_at": None,
    }


def _audit_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`~cpu_shared.security.audit.audit_values` by column name (``user`` is stored
    in ``user_id``)."""
    return {_AUDIT_COLUMN_OF[name]: v for name, v in values.items()}


#: AuditEntry's attribute names -> its column names.
_AUDIT_COLUMN_OF: dict[str, str] = {
    attribute.key: attribute.columns[0].name
    for attribute in AuditEntry.__mapper__.column_attrs  # type: ignore[attr-defined]
}


def _insert_unnest(table: sa.Table) -> sa.Insert:
    """``INSERT INTO table (...) SELECT * FROM unnest(<one array per column>) WITH ORDINALITY
    ORDER BY ordinality``: any number of rows, always the same SQL (PostgreSQL), inserted in
    the arrays' order (so the outbox's ids follow the order the events were given in)."""
    columns = _UNNEST_COLUMNS[table.name]
    arrays = [
        sa.bindparam(f"{table.name}__{name}", type_=postgresql.ARRAY(table.c[name].type))
        for name in columns
    ]
    rows = (
        sa.func.unnest(*arrays)
        .table_valued(*columns, with_ordinality="ordinality")
        .render_derived(f"{table.name}_rows")
    )
    return sa.insert(table).from_select(
        columns, sa.select(*(rows.c[name] for name in columns)).order_by(rows.c.ordinality)
    )


@functools.cache
def _add_referral_statement(with_audit: bool) -> sa.Select:
    """One statement inserting a referral, its children, digests, history, outbox rows and
    audit row (PostgreSQL): data-modifying CTEs, whose foreign keys are checked at the end of
    the statement, when every row is in. One round trip, and the same SQL every time, so it
    is compiled and prepared once per connection."""
    referral = sa.insert(REFERRAL).values(
        {c.name: sa.bindparam(f"referral__{c.name}", type_=c.type) for c in REFERRAL.c}
    )
    ctes = [
        referral.cte("new_referral"),
        _insert_unnest(CHILD).cte("new_children"),
        _insert_unnest(DIGEST).cte("new_digests"),
        _insert_unnest(STATUS_CHANGE).cte("new_history"),
        _insert_unnest(OUTBOX).cte("new_outbox"),
    ]
    if with_audit:
        audit = sa.insert(AUDIT).values(
            {
                c.name: sa.bindparam(f"audit_log__{c.name}", type_=c.type)
                for c in AUDIT.c
                if c.name != "id"
            }
        )
        ctes.append(audit.cte("new_audit"))
    return sa.select(sa.literal(1)).add_cte(*ctes)


@dataclass(frozen=True)
class _AsyncpgStatement:
    """A statement compiled for asyncpg: its SQL (``$n`` parameters, each with its type cast)
    and the names of its parameters in order, with the values fixed at build time."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, Any]

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        fixed = self.fixed
        return [parameters[name] if name in parameters else fixed[name] for name in self.names]


_ASYNCPG_DIALECT = PGDialect_asyncpg()
_ASYNCPG_STATEMENTS: dict[int, tuple[Any, _AsyncpgStatement]] = {}


def _asyncpg_statement(statement: Any) -> _AsyncpgStatement:
    """``statement`` (one of this module's, built once) compiled for asyncpg, once."""
    known = _ASYNCPG_STATEMENTS.get(id(statement))
    if known is None:
        compiled = statement.compile(dialect=_ASYNCPG_DIALECT)
        known = _ASYNCPG_STATEMENTS[id(statement)] = (
            statement,  # kept, so its id is never reused
            _AsyncpgStatement(
                compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params)
            ),
        )
    return known[1]


def _history_rows(referral_id: uuid.UUID, changes: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        {
            "referral_id": referral_id,
            "from_status": change.from_status.value if change.from_status else None,
            "to_status": change.to_status.value,
            "at": change.at,
            "by": change.by,
            "reason_code": change.reason_code,
        }
        for change in changes
    ]


def as_candidate_children(candidates: Iterable[Candidate]) -> list[CandidateChildren]:
    return [CandidateChildren(c.referral_id, c.children) for c in candidates]
