"""Loads and stores the ``Case`` aggregate, and keeps its first-contact tasks in step.

:meth:`CaseRepository.get` rebuilds a :class:`~cpu_casework.domain.case.Case` from its rows
(decrypting the officers' written reasons for the aggregate's use), and :meth:`save` writes back
what the commands changed. The aggregate's history lists only ever grow, so saving inserts the
new tail of each list, upserts the children, and updates the case row **only if its version is
still the one that was loaded** (a concurrent change makes the save fail with
:class:`ConcurrentUpdate` instead of overwriting it). On PostgreSQL ``get(for_update=True)``
also locks the row for the transaction, so concurrent commands on one case queue up.

Encryption: record ids are generated before the insert and every token is bound to
``field_context(table, column, row id)``; a token copied to another row does not decrypt.
Suspects' details arrive already sealed (the service layer encrypts them, the domain carries
the token as ``details_ref``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_casework.adapters.tables import (
    ArrestRow,
    AssignmentRow,
    CaseChildRow,
    CaseReferralRow,
    CaseRow,
    CaseTeamRow,
    ChargeRow,
    CourtOutcomeRow,
    FirstContactTaskRow,
    SuspectRow,
    TransitionRow,
    VictimServiceRow,
)
from cpu_casework.domain.assignment import Assignment
from cpu_casework.domain.case import Case, CaseChild, LinkedReferral, StatusTransition
from cpu_casework.domain.deadlines import FirstContactPolicy, first_contact_tasks
from cpu_casework.domain.errors import CaseworkError
from cpu_casework.domain.outcomes import Arrest, Charge, CourtOutcome, Sentence, Suspect
from cpu_casework.domain.victim_services import VictimServiceRecord
from cpu_shared.security.crypto import FieldCipher, field_context


class ConcurrentUpdate(CaseworkError):
    """The case changed since it was loaded; the command should be retried."""

    rule = "concurrent_update"

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} was changed by someone else; reload and try again")


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    value = aware(moment)
    assert value is not None
    return value


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class _Snapshot:
    """What the store holds of one case, to know what a save must write."""

    pseudonym: str
    version: int
    event_seq: int
    new: bool = False
    teams: set[str] = field(default_factory=set)
    children: dict[str, tuple[object, ...]] = field(default_factory=dict)
    referrals: set[str] = field(default_factory=set)
    assignments: int = 0
    transitions: int = 0
    suspects: set[str] = field(default_factory=set)
    arrests: int = 0
    charges: int = 0
    court_outcomes: int = 0
    victim_services: int = 0


def _child_state(child: CaseChild) -> tuple[object, ...]:
    return (child.age_years, child.sex, child.first_contact_at, child.first_contact_by)


@dataclass
class ReferralLinks:
    own: str | None = None
    same_as: str | None = None
    waiting: str | None = None


class CaseRepository:
    """Cases in one session (one unit of work)."""

    def __init__(
        self, session: AsyncSession, cipher: FieldCipher, policy: FirstContactPolicy
    ) -> None:
        self.session = session
        self.cipher = cipher
        self.policy = policy
        self._snapshots: dict[str, _Snapshot] = {}
        self._child_updates: list[sa.Update] = []

    # ------------------------------------------------------------------ look-ups

    async def case_id_of_origin(self, origin: str, origin_id: str) -> str | None:
        stmt = sa.select(CaseRow.id).where(CaseRow.origin == origin, CaseRow.origin_id == origin_id)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def case_id_of_referral(self, referral_id: str) -> str | None:
        """The case a referral (intake's pseudonym) is active on, opened from it or linked."""
        stmt = sa.select(CaseReferralRow.case_id).where(
            CaseReferralRow.referral_id == referral_id,
            CaseReferralRow.active.is_(True),  # type: ignore[attr-defined]
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def referral_links(self, referral_id: str, same_as: str | None) -> ReferralLinks:
        """In one query: the case ``referral_id`` is on, the case ``same_as`` is on, and a case
        waiting for ``referral_id`` (see :meth:`case_id_waiting_for`)."""
        wanted = [referral_id] if same_as is None else [referral_id, same_as]
        stmt = (
            sa.select(
                CaseReferralRow.case_id,
                CaseReferralRow.referral_id,
                CaseReferralRow.same_child_as,
                CaseReferralRow.received_at,
            )
            .where(CaseReferralRow.active.is_(True))  # type: ignore[attr-defined]
            .where(
                sa.or_(
                    CaseReferralRow.referral_id.in_(wanted),  # type: ignore[attr-defined]
                    CaseReferralRow.same_child_as == referral_id,
                )
            )
        )
        links = ReferralLinks()
        waiting: list[tuple[datetime, str]] = []
        for case_id, rid, same_child_as, received_at in await self.session.execute(stmt):
            if rid == referral_id:
                links.own = case_id
            if same_as is not None and rid == same_as:
                links.same_as = case_id
            if same_child_as == referral_id:
                waiting.append((received_at, case_id))
        links.waiting = min(waiting)[1] if waiting else None
        return links

    async def case_id_waiting_for(self, referral_id: str) -> str | None:
        """A case with a referral intake said is the same child as ``referral_id``."""
        stmt = (
            sa.select(CaseReferralRow.case_id)
            .where(
                CaseReferralRow.same_child_as == referral_id,
                CaseReferralRow.active.is_(True),  # type: ignore[attr-defined]
            )
            .order_by(CaseReferralRow.received_at)
            .limit(1)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def active_referrals(self, case_id: str) -> list[str]:
        stmt = sa.select(CaseReferralRow.referral_id).where(
            CaseReferralRow.case_id == case_id,
            CaseReferralRow.active.is_(True),  # type: ignore[attr-defined]
        )
        return list((await self.session.execute(stmt)).scalars())

    async def remember_same_child(self, referral_id: str, case_id: str, same_as: str) -> None:
        """Keep "same child as ``same_as``" on the referral's row, for when that one arrives."""
        await self.session.execute(
            sa.update(CaseReferralRow)
            .where(CaseReferralRow.case_id == case_id, CaseReferralRow.referral_id == referral_id)
            .values(same_child_as=same_as)
        )

    async def deactivate_referral(self, referral_id: str, case_id: str) -> None:
        """The referral now belongs to another case; this case keeps it as history only.
        Call before saving the case it is linked to (one active case per referral)."""
        await self.session.execute(
            sa.update(CaseReferralRow)
            .where(CaseReferralRow.case_id == case_id, CaseReferralRow.referral_id == referral_id)
            .values(active=False)
        )

    async def case_id_of_pseudonym(self, pseudonym: str) -> str | None:
        stmt = sa.select(CaseRow.id).where(CaseRow.pseudonym == pseudonym)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    def pseudonym_of(self, case: Case) -> str:
        return self._snapshots[case.case_id].pseudonym

    # ------------------------------------------------------------------ loading

    async def get(self, case_id: str, *, for_update: bool = False) -> Case | None:
        stmt = sa.select(CaseRow).where(CaseRow.id == case_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.session.execute(stmt)).scalar_one_or_none()
        if row is None:
            return None
        return await self._rebuild(row)

    async def _rows(self, model: type, case_id: str, order: object) -> list:  # type: ignore[type-arg]
        stmt = sa.select(model).where(model.case_id == case_id).order_by(order)  # type: ignore[attr-defined]
        return list((await self.session.execute(stmt)).scalars())

    async def _rebuild(self, row: CaseRow) -> Case:
        cid = row.id
        children = await self._rows(CaseChildRow, cid, CaseChildRow.seq)
        referrals = await self._rows(CaseReferralRow, cid, CaseReferralRow.seq)
        assignments = await self._rows(AssignmentRow, cid, AssignmentRow.seq)
        transitions = await self._rows(TransitionRow, cid, TransitionRow.seq)
        suspects = await self._rows(SuspectRow, cid, SuspectRow.seq)
        arrests = await self._rows(ArrestRow, cid, ArrestRow.seq)
        charges = await self._rows(ChargeRow, cid, ChargeRow.seq)
        outcomes = await self._rows(CourtOutcomeRow, cid, CourtOutcomeRow.seq)
        services = await self._rows(VictimServiceRow, cid, VictimServiceRow.seq)
        teams = set(
            (
                await self.session.execute(
                    sa.select(CaseTeamRow.team).where(CaseTeamRow.case_id == cid)
                )
            ).scalars()
        )

        case = Case(
            case_id=cid,
            origin=row.origin,
            origin_id=row.origin_id,
            priority=row.priority,
            province_code=row.province_code,
            opened_at=_aware(row.opened_at),
            referral_received_at=aware(row.referral_received_at),
            concerns=list(row.concerns),
            teams=list(row.teams),
            status=row.status,
            version=row.version,
            cycle=row.cycle,
            child_homicide=row.child_homicide,
            children={
                c.child_id: CaseChild(
                    child_id=c.child_id,
                    age_years=c.age_years,
                    sex=c.sex,
                    referred_at=_aware(c.referred_at),
                    referral_id=c.referral_id,
                    first_contact_at=aware(c.first_contact_at),
                    first_contact_by=c.first_contact_by,
                )
                for c in children
            },
            linked_referrals=[
                LinkedReferral(
                    referral_id=r.referral_id,
                    received_at=_aware(r.received_at),
                    linked_at=_aware(r.linked_at),
                    linked_by=r.linked_by or "",
                )
                for r in referrals
                if not r.is_origin
            ],
            assignments=[
                Assignment(
                    team=a.team,
                    investigator_id=a.investigator_id,
                    province_code=a.province_code,
                    assigned_at=_aware(a.assigned_at),
                    assigned_by=a.assigned_by,
                    reassignment=a.reassignment,
                    reason_code=a.reason_code,
                    reason_text=self._open(
                        "case_assignments", "reason_text_enc", a.id, a.reason_text_enc
                    ),
                )
                for a in assignments
            ],
            suspects={
                s.id: Suspect(
                    suspect_id=s.id,
                    details_ref=s.details_enc,
                    identified_at=_aware(s.identified_at),
                    identified_by=s.identified_by,
                )
                for s in suspects
            },
            arrests=[
                Arrest(a.suspect_id, a.arrested_on, _aware(a.recorded_at), a.recorded_by, a.cycle)
                for a in arrests
            ],
            charges=[
                Charge(
                    c.suspect_id,
                    tuple(c.offence_codes),
                    c.charged_on,
                    _aware(c.recorded_at),
                    c.recorded_by,
                    c.cycle,
                )
                for c in charges
            ],
            court_outcomes=[
                CourtOutcome(
                    o.suspect_id,
                    o.outcome,
                    tuple(o.offence_codes),
                    Sentence(o.sentence_years or 0, o.sentence_months or 0)
                    if o.sentence_years is not None
                    else None,
                    o.decided_on,
                    _aware(o.recorded_at),
                    o.recorded_by,
                    o.cycle,
                )
                for o in outcomes
            ],
            victim_services=[
                VictimServiceRecord(
                    v.child_id,
                    v.service,
                    v.provider_code,
                    v.provided_on,
                    _aware(v.recorded_at),
                    v.recorded_by,
                )
                for v in services
            ],
            transitions=[
                StatusTransition(
                    from_status=t.from_status,
                    to_status=t.to_status,
                    at=_aware(t.at),
                    by=t.by,
                    reason_code=t.reason_code,
                    reason_text=self._open(
                        "case_transitions", "reason_text_enc", t.id, t.reason_text_enc
                    ),
                    cycle=t.cycle,
                )
                for t in transitions
            ],
        )
        self._snapshots[cid] = _Snapshot(
            pseudonym=row.pseudonym,
            version=row.version,
            event_seq=row.event_seq,
            teams=teams,
            children={c.child_id: _child_state(case.children[c.child_id]) for c in children},
            referrals={r.referral_id for r in referrals},
            assignments=len(assignments),
            transitions=len(transitions),
            suspects={s.id for s in suspects},
            arrests=len(arrests),
            charges=len(charges),
            court_outcomes=len(outcomes),
            victim_services=len(services),
        )
        return case

    def _open(self, table: str, column: str, row_id: str, token: str | None) -> str | None:
        if token is None:
            return None
        return self.cipher.decrypt(token, context=field_context(table, column, row_id))

    def _seal(self, table: str, column: str, row_id: str, text: str | None) -> str | None:
        if text is None:
            return None
        return self.cipher.encrypt(text, context=field_context(table, column, row_id))

    # ------------------------------------------------------------------ storing

    def add(self, case: Case, *, pseudonym: str) -> None:
        """Register a newly opened case; :meth:`save` writes it (and :meth:`next_event_version`
        may be called before)."""
        self._snapshots[case.case_id] = _Snapshot(
            pseudonym=pseudonym, version=0, event_seq=0, new=True
        )

    def next_event_version(self, case: Case) -> int:
        """The aggregate_version of the next event published about ``case`` (1, 2, 3...).

        One per event, strictly increasing per case: a command that records two events (a
        closing transition records ``case.status_changed`` and ``case.closed``) gives them two
        versions, so a consumer guarding order with versions applies both.
        """
        snapshot = self._snapshots[case.case_id]
        snapshot.event_seq += 1
        return snapshot.event_seq

    async def save(self, case: Case, *, same_child_as: str | None = None) -> None:
        """Write what changed since the case was loaded (or everything, for a new case).

        ``same_child_as``: intake's "same child as" referral, kept on the case's origin
        referral when that referral's own case is not known yet.
        """
        snap = self._snapshots[case.case_id]
        now = datetime.now(UTC)
        current = case.current_assignment
        values = {
            "priority": case.priority,
            "province_code": case.province_code,
            "concerns": list(case.concerns),
            "teams": list(case.teams),
            "lead_team": current.team if current else None,
            "investigator_id": current.investigator_id if current else None,
            "status": case.status,
            "version": case.version,
            "cycle": case.cycle,
            "child_homicide": case.child_homicide,
            "event_seq": snap.event_seq,
            "updated_at": now,
        }
        if snap.new:
            self.session.add(
                CaseRow(
                    id=case.case_id,
                    pseudonym=snap.pseudonym,
                    origin=case.origin,
                    origin_id=case.origin_id,
                    opened_at=case.opened_at,
                    referral_received_at=case.referral_received_at,
                    **values,  # type: ignore[arg-type]
                )
            )
            # No relationship() ties the rows together, so the flush order is ours to make:
            # the case row before the rows that reference it.
            await self.session.flush()
            if case.origin == "referral":
                self.session.add(
                    CaseReferralRow(
                        referral_id=case.origin_id,
                        case_id=case.case_id,
                        seq=0,
                        is_origin=True,
                        active=True,
                        received_at=case.referral_received_at or case.opened_at,
                        same_child_as=same_child_as,
                    )
                )
                snap.referrals.add(case.origin_id)
        else:
            result = await self.session.execute(
                sa.update(CaseRow)
                .where(CaseRow.id == case.case_id, CaseRow.version == snap.version)
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise ConcurrentUpdate(case.case_id)
        self._write_children(case, snap)
        await self._write_history(case, snap)
        await self._write_tasks(case, replace=not snap.new)
        await self.session.flush()
        snap.new = False
        snap.version = case.version

    def _write_children(self, case: Case, snap: _Snapshot) -> None:
        for team in case.teams:
            if team not in snap.teams:
                self.session.add(CaseTeamRow(case_id=case.case_id, team=team))
                snap.teams.add(team)
        for seq, child in enumerate(case.children.values()):
            state = _child_state(child)
            if child.child_id not in snap.children:
                self.session.add(
                    CaseChildRow(
                        case_id=case.case_id,
                        child_id=child.child_id,
                        seq=seq,
                        age_years=child.age_years,
                        sex=child.sex,
                        referred_at=child.referred_at,
                        referral_id=child.referral_id,
                        first_contact_at=child.first_contact_at,
                        first_contact_by=child.first_contact_by,
                    )
                )
            elif snap.children[child.child_id] != state:
                self._child_updates.append(
                    sa.update(CaseChildRow)
                    .where(
                        CaseChildRow.case_id == case.case_id,
                        CaseChildRow.child_id == child.child_id,
                    )
                    .values(
                        age_years=child.age_years,
                        sex=child.sex,
                        first_contact_at=child.first_contact_at,
                        first_contact_by=child.first_contact_by,
                    )
                )
            snap.children[child.child_id] = state
        for seq, link in enumerate(case.linked_referrals, start=1):
            if link.referral_id not in snap.referrals:
                self.session.add(
                    CaseReferralRow(
                        referral_id=link.referral_id,
                        case_id=case.case_id,
                        seq=seq,
                        is_origin=False,
                        active=True,
                        received_at=link.received_at,
                        linked_at=link.linked_at,
                        linked_by=link.linked_by,
                    )
                )
                snap.referrals.add(link.referral_id)

    async def _write_history(self, case: Case, snap: _Snapshot) -> None:
        cid = case.case_id
        for stmt in self._child_updates:
            await self.session.execute(stmt)
        self._child_updates.clear()
        for seq in range(snap.assignments, len(case.assignments)):
            a = case.assignments[seq]
            row_id = new_id()
            self.session.add(
                AssignmentRow(
                    id=row_id,
                    case_id=cid,
                    seq=seq,
                    team=a.team,
                    investigator_id=a.investigator_id,
                    province_code=a.province_code,
                    assigned_at=a.assigned_at,
                    assigned_by=a.assigned_by,
                    reassignment=a.reassignment,
                    reason_code=a.reason_code,
                    reason_text_enc=self._seal(
                        "case_assignments", "reason_text_enc", row_id, a.reason_text
                    ),
                )
            )
        snap.assignments = len(case.assignments)
        for seq in range(snap.transitions, len(case.transitions)):
            t = case.transitions[seq]
            row_id = new_id()
            self.session.add(
                TransitionRow(
                    id=row_id,
                    case_id=cid,
                    seq=seq,
                    from_status=t.from_status,
                    to_status=t.to_status,
                    at=t.at,
                    by=t.by,
                    reason_code=t.reason_code,
                    reason_text_enc=self._seal(
                        "case_transitions", "reason_text_enc", row_id, t.reason_text
                    ),
                    cycle=t.cycle,
                )
            )
        snap.transitions = len(case.transitions)
        new_suspects = False
        for seq, suspect in enumerate(case.suspects.values()):
            if suspect.suspect_id in snap.suspects:
                continue
            new_suspects = True
            self.session.add(
                SuspectRow(
                    id=suspect.suspect_id,
                    case_id=cid,
                    seq=seq,
                    details_enc=suspect.details_ref,
                    identified_at=suspect.identified_at,
                    identified_by=suspect.identified_by,
                )
            )
            snap.suspects.add(suspect.suspect_id)
        if new_suspects:
            # Arrests, charges and outcomes reference suspects: insert those first.
            await self.session.flush()
        for seq in range(snap.arrests, len(case.arrests)):
            r = case.arrests[seq]
            self.session.add(
                ArrestRow(
                    id=new_id(),
                    case_id=cid,
                    seq=seq,
                    suspect_id=r.suspect_id,
                    arrested_on=r.arrested_on,
                    recorded_at=r.recorded_at,
                    recorded_by=r.recorded_by,
                    cycle=r.cycle,
                )
            )
        snap.arrests = len(case.arrests)
        for seq in range(snap.charges, len(case.charges)):
            c = case.charges[seq]
            self.session.add(
                ChargeRow(
                    id=new_id(),
                    case_id=cid,
                    seq=seq,
                    suspect_id=c.suspect_id,
                    offence_codes=list(c.offence_codes),
                    charged_on=c.charged_on,
                    recorded_at=c.recorded_at,
                    recorded_by=c.recorded_by,
                    cycle=c.cycle,
                )
            )
        snap.charges = len(case.charges)
        for seq in range(snap.court_outcomes, len(case.court_outcomes)):
            o = case.court_outcomes[seq]
            self.session.add(
                CourtOutcomeRow(
                    id=new_id(),
                    case_id=cid,
                    seq=seq,
                    suspect_id=o.suspect_id,
                    outcome=o.outcome,
                    offence_codes=list(o.offence_codes),
                    sentence_years=o.sentence.years if o.sentence else None,
                    sentence_months=o.sentence.months if o.sentence else None,
                    decided_on=o.decided_on,
                    recorded_at=o.recorded_at,
                    recorded_by=o.recorded_by,
                    cycle=o.cycle,
                )
            )
        snap.court_outcomes = len(case.court_outcomes)
        for seq in range(snap.victim_services, len(case.victim_services)):
            v = case.victim_services[seq]
            self.session.add(
                VictimServiceRow(
                    id=new_id(),
                    case_id=cid,
                    seq=seq,
                    child_id=v.child_id,
                    service=v.service,
                    provider_code=v.provider_code,
                    provided_on=v.provided_on,
                    recorded_at=v.recorded_at,
                    recorded_by=v.recorded_by,
                )
            )
        snap.victim_services = len(case.victim_services)

    async def _write_tasks(self, case: Case, *, replace: bool) -> None:
        """Replace the case's first-contact tasks with what the domain computes now."""
        if replace:
            await self.session.execute(
                sa.delete(FirstContactTaskRow).where(FirstContactTaskRow.case_id == case.case_id)
            )
        for task in first_contact_tasks(case, self.policy):
            self.session.add(
                FirstContactTaskRow(
                    case_id=task.case_id,
                    child_id=task.child_id,
                    team=task.team,
                    priority=task.priority,
                    province_code=task.province_code,
                    received_at=task.received_at,
                    due_at=task.due_at,
                    contacted_at=task.contacted_at,
                    case_closed=task.case_closed,
                    status=task.status,
                )
            )
