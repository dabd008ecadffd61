"""Referral handlers: one function per command or query, each one unit of work.

Every handler that touches a referral writes an audit row (``record_access``) in the same
transaction as what it read or changed, so the trail and the change commit together. Rules
live in the domain (validation, triage, matching, decisions, status); here they are applied,
stored and announced.

When does casework hear of a referral?
-------------------------------------
``referral.submitted`` goes out at once, for every referral. ``referral.triaged`` - from which
casework opens a case - goes out:

* at once, when no earlier referral may be the same child;
* at once as well for a P1 referral even when there are possible matches: a child in danger is
  never held behind a clerical question. If the officer then decides ``same_child``,
  ``referral.triaged`` is published again (higher ``aggregate_version``) with
  ``same_child_as_referral_id`` set: casework, keyed on ``referral_id``, links the referral to
  the earlier child's case instead of keeping it apart;
* otherwise (P2, P3 with possible matches) only after the officer's decision: ``same_child`` on
  any candidate publishes it with ``same_child_as_referral_id``; ``new_child`` on every
  candidate publishes it without. Until then the referral is "awaiting match decision" in
  lists and on the officers' pages.

A ``same_child`` decision on a referral whose ``referral.triaged`` already went out (a match
found later, e.g. submitted at the same moment) is handled like the P1 case. A withdrawn
referral never publishes ``referral.triaged`` again; ``referral.withdrawn`` says why.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncSession

from cpu_intake.adapters.protection import RecordProtection
from cpu_intake.adapters.public import (
    MatchDecisionResultPublic,
    MatchesPublic,
    MatchPublic,
    ReferralCreatedPublic,
    ReferralPublic,
    ReferralsPublic,
    ReferralSummaryPublic,
    WithdrawalResultPublic,
)
from cpu_intake.adapters.repository import (
    ListFilters,
    ReferralRepository,
    StaleReferral,
    StoredChild,
    StoredReferral,
    as_candidate_children,
    codes,
    utc,
)
from cpu_intake.adapters.tables import Referral
from cpu_intake.domain import referral as domain
from cpu_intake.domain.decisions import MatchDecisionCreate, MatchDecisionKind
from cpu_intake.domain.matching import MatchCandidate, match_features, rank_matches
from cpu_intake.domain.messages import OfficerFacingError
from cpu_intake.domain.triage import TriageRules, triage
from cpu_intake.permissions import (
    CREATE,
    DESK_ROLES,
    LIST,
    MATCH_DECIDE,
    MATCHES_READ,
    READ,
    WITHDRAW,
)
from cpu_intake.service_layer import publishing
from cpu_shared.contracts.casework import CaseOpened
from cpu_shared.logging import get_logger
from cpu_shared.security.audit import audit_values, record_access
from cpu_shared.security.auth import Principal
from cpu_shared.security.crypto import Keyring
from cpu_shared.security.permissions import Role, can_see_record

RECORD_TYPE = "referral"

log = get_logger(__name__)


class ReferralNotFound(OfficerFacingError):
    """No such referral, or one the caller may not see (the same answer, so ids cannot be
    probed)."""

    def __init__(self) -> None:
        super().__init__("referral_not_found")


class ReferralChanged(OfficerFacingError):
    def __init__(self) -> None:
        super().__init__("referral_changed")


class UnitOfWork(Protocol):
    """What the handlers need of the runtime (``ServiceRuntime`` is one)."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]: ...


class Intake:
    """The handlers' dependencies, built once per process."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        keyring: Callable[[], Keyring],
        rules: TriageRules,
        candidate_limit: int = 200,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.uow = uow
        self._keyring = keyring
        self.rules = rules
        self.candidate_limit = candidate_limit
        self.submitted = Counter(
            "cpu_intake_referrals_submitted",
            "Referrals recorded, by priority and source (codes only)",
            ["priority", "source"],
            registry=registry,
        )
        self.held = Counter(
            "cpu_intake_referrals_held_for_match_decision",
            "Referrals whose referral.triaged waits for the officer's match decision",
            registry=registry,
        )

    @functools.cached_property
    def protection(self) -> RecordProtection:
        # Lazily: building the app (e.g. for `cpu asyncapi`) must not need the keys.
        return RecordProtection.from_keyring(self._keyring())

    @contextlib.asynccontextmanager
    async def repository(self) -> AsyncIterator[ReferralRepository]:
        """A repository in a new transaction (unit of work)."""
        async with self.uow.transaction() as session:
            yield ReferralRepository(session, self.protection)


def may_see(principal: Principal, row: Referral) -> bool:
    """Whether ``principal`` may see this referral's content (see ``permissions.py``)."""
    if Role.supervisor in principal.roles:
        return True
    if not principal.roles.isdisjoint(DESK_ROLES):
        return not principal.provinces or row.province_code in principal.provinces
    return can_see_record(principal, assigned_teams=codes(row.teams), province=row.province_code)


def _audit(
    repo: ReferralRepository,
    principal: Principal,
    action: str,
    referral_id: uuid.UUID | None,
    request: Request | None,
    *,
    allowed: bool = True,
) -> None:
    record_access(
        repo.session,
        principal,
        action=action,
        record_type=RECORD_TYPE,
        record_id=str(referral_id) if referral_id else None,
        request=request,
        outcome="allowed" if allowed else "denied",
    )


async def _visible_row(
    repo: ReferralRepository,
    principal: Principal,
    referral_id: uuid.UUID,
    action: str,
    request: Request | None,
    *,
    for_update: bool = False,
) -> Referral | None:
    """The row if it exists and the caller may see it; a refused look is audited as denied
    (None is returned and the caller answers "not found" after the transaction commits)."""
    row = await repo.get(referral_id, for_update=for_update)
    if row is None:
        raise ReferralNotFound()
    if not may_see(principal, row):
        _audit(repo, principal, action, referral_id, request, allowed=False)
        return None
    return row


# --- commands -----------------------------------------------------------------------------------


async def submit(
    intake: Intake,
    principal: Principal,
    details: domain.ReferralCreate,
    *,
    request: Request | None = None,
    now: datetime | None = None,
) -> ReferralCreatedPublic:
    """Record a referral: triage it, store it encrypted with its digests, publish its events."""
    now = now or datetime.now(UTC)
    protection = intake.protection
    result = triage(details, intake.rules)
    referral_id = uuid.uuid4()
    child_ids = [uuid.uuid4() for _ in details.children]
    digests = [
        protection.digests(match_features(child, details.reporter.phone, as_of=details.received_on))
        for child in details.children
    ]
    async with intake.repository() as repo:
        # Candidates first: the reference counter's row lock is then held only for the
        # inserts and the commit. One transaction, one connection for the whole submission.
        candidates = await repo.candidates(
            digests, before=(now, referral_id), limit=intake.candidate_limit
        )
        ranked = rank_matches(digests, as_candidate_children(candidates))
        pending = bool(ranked) and result.priority != "P1"
        reference = await repo.next_reference(domain.cambodia_date(now).year)
        referral = domain.Referral.submit(
            details,
            referral_id=referral_id,
            reference=reference,
            submitted_by=principal.user,
            at=now,
        )
        submitted_version = referral.version
        referral.apply_triage(result, at=now)

        def events(
            row: StoredReferral, children: list[StoredChild]
        ) -> list[publishing.Announcement]:
            profiles = publishing.child_profiles(protection, children)
            announced = [publishing.submitted(row, profiles, version=submitted_version)]
            if not pending:
                announced.append(
                    publishing.triaged(
                        protection, row, profiles, version=referral.version, same_child_as=None
                    )
                )
            return announced

        # The referral, its events (outbox) and its audit row: one statement on PostgreSQL.
        await repo.add(
            referral,
            pseudonym=protection.referral_pseudonym(referral_id),
            child_ids=child_ids,
            digests=digests,
            match_decision_pending=pending,
            triaged_published_at=None if pending else now,
            events=events,
            audit=audit_values(
                principal,
                action=CREATE,
                record_type=RECORD_TYPE,
                record_id=str(referral_id),
                request=request,
            ),
        )

    intake.submitted.labels(result.priority, details.source).inc()
    if pending:
        intake.held.inc()
    return ReferralCreatedPublic(
        id=referral_id,
        reference=reference,
        priority=result.priority,
        status=referral.status.value,
        teams=list(result.teams),
        rule_ids=list(result.rule_ids),
        possible_matches=len(ranked),
        match_decision_pending=pending,
    )


async def decide_match(
    intake: Intake,
    principal: Principal,
    referral_id: uuid.UUID,
    body: MatchDecisionCreate,
    *,
    request: Request | None = None,
    now: datetime | None = None,
) -> MatchDecisionResultPublic:
    """The officer's decision on one possible match (rules: ``domain.decisions``); may release
    ``referral.triaged`` (see the module docstring)."""
    now = now or datetime.now(UTC)
    protection = intake.protection
    async with intake.repository() as repo:
        await repo.lock_for_write()
        row = await _visible_row(
            repo, principal, referral_id, MATCH_DECIDE, request, for_update=True
        )
        if row is not None:
            ranked, _ = await _ranked(intake, repo, row)
            by_candidate = {m.referral_id: m for m in ranked}
            referral = await repo.aggregate(row)
            decision = referral.decide_match(
                body, decided_by=principal.user, at=now, candidate_ids=by_candidate.keys()
            )
            shown = by_candidate[decision.candidate_referral_id]
            decided = {d.candidate_referral_id for d in referral.match_decisions}
            same_child = decision.decision is MatchDecisionKind.SAME_CHILD
            release = same_child or (row.match_decision_pending and decided >= by_candidate.keys())
            bookkeeping = (
                {"match_decision_pending": False, "triaged_published_at": now} if release else {}
            )
            try:
                await repo.save_change(
                    row,
                    referral,
                    decision=decision,
                    decision_score=shown.score,
                    decision_reasons=shown.reasons,
                    **bookkeeping,
                )
            except StaleReferral:
                raise ReferralChanged() from None
            if release:
                profiles = publishing.child_profiles(protection, await repo.children(row.id))
                publishing.publish_triaged(
                    repo.session,
                    protection,
                    row,
                    profiles,
                    version=referral.version,
                    same_child_as=referral.same_child_as,
                )
            _audit(repo, principal, MATCH_DECIDE, referral_id, request)
    if row is None:
        raise ReferralNotFound()
    return MatchDecisionResultPublic(
        referral_id=referral_id,
        candidate_referral_id=decision.candidate_referral_id,
        decision=decision.decision.value,
        status=referral.status.value,
        match_decision_pending=row.match_decision_pending and not release,
        same_child_as_referral_id=referral.same_child_as,
    )


async def withdraw(
    intake: Intake,
    principal: Principal,
    referral_id: uuid.UUID,
    reason_code: str,
    *,
    request: Request | None = None,
    now: datetime | None = None,
) -> WithdrawalResultPublic:
    """Withdraw a referral (made in error, a duplicate call...): ``referral.withdrawn``."""
    now = now or datetime.now(UTC)
    async with intake.repository() as repo:
        await repo.lock_for_write()
        row = await _visible_row(repo, principal, referral_id, WITHDRAW, request, for_update=True)
        if row is not None:
            referral = await repo.aggregate(row)
            referral.withdraw(reason_code=reason_code, by=principal.user, at=now)
            try:
                await repo.save_change(row, referral, match_decision_pending=False)
            except StaleReferral:
                raise ReferralChanged() from None
            publishing.publish_withdrawn(
                repo.session, row, reason_code=reason_code, at=now, version=referral.version
            )
            _audit(repo, principal, WITHDRAW, referral_id, request)
            # A withdrawn referral is no longer anyone's candidate: a later referral held
            # only for a decision about this one must not wait for ever.
            for waiting in await repo.held_for_candidate(referral_id):
                await _release_if_settled(intake, repo, waiting, now)
    if row is None:
        raise ReferralNotFound()
    return WithdrawalResultPublic(
        id=referral_id, status=referral.status.value, withdrawal_reason=reason_code
    )


async def on_case_opened(intake: Intake, session: AsyncSession, event: CaseOpened) -> None:
    """Casework opened a case from one of intake's referrals: the referral is ``case_opened``.

    Idempotent (a redelivery finds it so already). A referral in another state (linked to an
    earlier child, withdrawn meanwhile) is left as it is: casework's case is the record then.
    """
    repo = ReferralRepository(session, intake.protection)
    await repo.lock_for_write()
    row = await repo.get_by_pseudonym(event.origin_id, for_update=True)
    if row is None:
        return  # not a referral of this intake store
    referral = await repo.aggregate(row)
    if not domain.can_transition(referral.status, domain.ReferralStatus.CASE_OPENED):
        log.info(
            "case opened for a referral that cannot take it; left as it is",
            referral_id=str(row.id),
            status=referral.status.value,
        )
        return
    referral.mark_case_opened(case_id=event.case_id, at=event.opened_at, by="casework")
    await repo.save_change(row, referral, case_id=event.case_id)


# --- queries ------------------------------------------------------------------------------------


async def get(
    intake: Intake,
    principal: Principal,
    referral_id: uuid.UUID,
    *,
    request: Request | None = None,
) -> ReferralPublic:
    """One referral, decrypted, for a caller who may see it (audited either way)."""
    async with intake.repository() as repo:
        row = await _visible_row(repo, principal, referral_id, READ, request)
        if row is not None:
            result = ReferralPublic.of_details(await repo.details(row))
            _audit(repo, principal, READ, referral_id, request)
    if row is None:
        raise ReferralNotFound()
    return result


async def list_referrals(
    intake: Intake,
    principal: Principal,
    filters: ListFilters,
    *,
    request: Request | None = None,
) -> ReferralsPublic:
    """A page of referrals (codes and dates only), limited to the caller's provinces."""
    if Role.supervisor not in principal.roles and principal.provinces:
        filters = ListFilters(**{**filters.__dict__, "provinces": principal.provinces})
    async with intake.repository() as repo:
        rows, total = await repo.list(filters)
        _audit(repo, principal, LIST, None, request)
    return ReferralsPublic(
        items=[ReferralSummaryPublic.of(row) for row in rows],
        total=total,
        limit=filters.limit,
        offset=filters.offset,
    )


async def matches(
    intake: Intake,
    principal: Principal,
    referral_id: uuid.UUID,
    *,
    request: Request | None = None,
) -> MatchesPublic:
    """Earlier referrals that may be the same child, best first, scored on digests only."""
    async with intake.repository() as repo:
        row = await _visible_row(repo, principal, referral_id, MATCHES_READ, request)
        if row is not None:
            ranked, references = await _ranked(intake, repo, row)
            _audit(repo, principal, MATCHES_READ, referral_id, request)
    if row is None:
        raise ReferralNotFound()
    return MatchesPublic(
        matches=[
            MatchPublic(
                referral_id=m.referral_id,
                reference=references[m.referral_id],
                score=m.score,
                reasons=list(m.reasons),
            )
            for m in ranked
        ]
    )


async def _release_if_settled(
    intake: Intake, repo: ReferralRepository, referral_id: uuid.UUID, now: datetime
) -> None:
    """Publish the held ``referral.triaged`` of ``referral_id`` if no possible match is left
    undecided (its candidates change when one of them is withdrawn)."""
    row = await repo.get(referral_id, for_update=True)
    if row is None or not row.match_decision_pending:
        return
    ranked, _ = await _ranked(intake, repo, row)
    decided = {d.candidate_referral_id for d in await repo.decisions(row.id)}
    if not {m.referral_id for m in ranked} <= decided:
        return
    await repo.mark_released(row, at=now)
    profiles = publishing.child_profiles(intake.protection, await repo.children(row.id))
    publishing.publish_triaged(
        repo.session, intake.protection, row, profiles, version=row.version, same_child_as=None
    )


async def _ranked(
    intake: Intake, repo: ReferralRepository, row: Referral
) -> tuple[list[MatchCandidate], dict[uuid.UUID, str]]:
    """The stored referral's possible matches, best first, and the candidates' references."""
    probe = await repo.stored_digests(row.id)
    candidates = await repo.candidates(
        probe, before=(utc(row.submitted_at), row.id), limit=intake.candidate_limit
    )
    ranked = rank_matches(probe, as_candidate_children(candidates), exclude=row.id)
    return ranked, {c.referral_id: c.reference for c in candidates}
