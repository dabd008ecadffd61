"""Who may see which evidence item, and the audit trail of every look and every change.

The permission table says which *roles* may read or change evidence at all; this module says
which *items* a person may see (issue 4: a case, and what hangs off it, is visible to its
assigned team and to supervisors):

* a supervisor sees every item;
* the people an item is in the hands of see it: its current custodian, whoever registered it,
  both parties of its open transfer, and the analysts assigned to analyse it;
* otherwise the shared record rule applies (:func:`cpu_shared.security.permissions.can_see_record`)
  with the item's case teams as casework announced them, plus the Forensic Science Team
  (``FST``), which keeps every exhibit of every case, and the case's province.

An item a person may not see answers 404, exactly like an item that does not exist, so ids
cannot be probed; the refusal itself is audited.
"""

from __future__ import annotations

from fastapi import Request

from cpu_forensics.adapters.repository import EvidenceRepository
from cpu_forensics.domain.evidence import EvidenceItem
from cpu_forensics.service_layer.context import Forensics
from cpu_shared.security.audit import record_access
from cpu_shared.security.auth import Principal
from cpu_shared.security.permissions import can_see_record
from cpu_shared.security.roles import RECORD_ROLES, Role

#: The team that keeps every exhibit (CONTRACT.md: teams OVCS, HIT, FST, ICAC).
EVIDENCE_TEAM = "FST"
ITEM_RECORD = "evidence_item"
LEDGER_RECORD = "custody_ledger"
ANALYSIS_RECORD = "lab_analysis"


class ItemNotFound(Exception):
    """No such item, or not one this person may see (404 either way)."""

    def __init__(self, item_id: str) -> None:
        super().__init__(item_id)
        self.item_id = item_id


class NotFound(Exception):
    """No such transfer or analysis under this item (404)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def sees_every_exhibit(principal: Principal) -> bool:
    """Supervisors and the Forensic Science Team (which keeps every exhibit)."""
    if Role.supervisor in principal.roles:
        return True
    return EVIDENCE_TEAM in principal.teams and not principal.roles.isdisjoint(RECORD_ROLES)


def parties(item: EvidenceItem) -> set[str]:
    people = {item.custodian, item.registered_by}
    if item.pending_transfer is not None:
        people |= {item.pending_transfer.from_user, item.pending_transfer.to_user}
    return people


async def can_see_item(
    fx: Forensics, repo: EvidenceRepository, principal: Principal, item: EvidenceItem
) -> bool:
    if Role.supervisor in principal.roles:
        return True
    if principal.user in parties(item):
        return True
    if principal.user in await repo.analysts_of(item.id):
        return True
    known = await repo.known_case(fx.case_pseudonym(item.case_id))
    teams, province = known if known is not None else (frozenset(), None)
    return can_see_record(principal, assigned_teams=teams | {EVIDENCE_TEAM}, province=province)


async def visible_item(
    fx: Forensics,
    repo: EvidenceRepository,
    principal: Principal,
    item_id: str,
    *,
    action: str,
    request: Request | None,
    check_chain: bool = True,
) -> EvidenceItem:
    """The item, if it exists and ``principal`` may see it; else :class:`ItemNotFound`.

    A refusal is audited (``denied``) in its own transaction by the caller's error path;
    see :func:`audit_denied`.
    """
    item = await repo.get_item(item_id, check_chain=check_chain)
    if item is None or not await can_see_item(fx, repo, principal, item):
        raise ItemNotFound(item_id)
    return item


def audit(
    session: object,
    principal: Principal,
    *,
    action: str,
    item_id: str | None,
    request: Request | None,
    record_type: str = ITEM_RECORD,
) -> None:
    """One allowed access, in the caller's transaction."""
    record_access(
        session,
        principal,
        action=action,
        record_type=record_type,
        record_id=item_id,
        request=request,
    )


async def audit_denied(
    fx: Forensics,
    principal: Principal,
    *,
    action: str,
    record_id: str | None,
    request: Request | None,
    record_type: str = ITEM_RECORD,
) -> None:
    """A refused access or change, in a transaction of its own (the refused one rolled back)."""
    safe_id = record_id if record_id and _looks_like_id(record_id) else None
    async with fx.runtime.transaction() as session:
        record_access(
            session,
            principal,
            action=action,
            record_type=record_type,
            record_id=safe_id,
            request=request,
            outcome="denied",
        )


def _looks_like_id(value: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}", value) is not None
