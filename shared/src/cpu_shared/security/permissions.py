"""Deny-by-default authorisation: which roles may do which action, and who sees which record.

Each service declares its :class:`PermissionTable` as data, next to its routes::

    PERMISSIONS = PermissionTable("intake", {
        "referral.create": {Role.intake_officer, Role.supervisor},
        "referral.read": {Role.intake_officer, Role.investigator, Role.supervisor},
        **AUDIT_GRANTS,
    })

    @router.post("/referrals")
    async def create(principal: Principal = Depends(PERMISSIONS.require("referral.create"))): ...

Two layers, both needed: the table answers "may this role do this kind of thing at all"
(403 otherwise) and :func:`can_see_record` answers "may this person see this particular
child's record" (the service answers 404 when not, so ids cannot be probed).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple

from fastapi import Depends, HTTPException

from cpu_shared.logging import get_logger
from cpu_shared.security.auth import Principal, current_principal
from cpu_shared.security.roles import RECORD_ROLES, Role, parse_role

__all__ = [
    "AUDIT_GRANTS",
    "AUDIT_READ",
    "PermissionExpectation",
    "PermissionTable",
    "Role",
    "can_see_record",
]

log = get_logger(__name__)

#: The action guarding the audit log reader (see :mod:`.audit`).
AUDIT_READ = "audit.read"
#: Grants every service merges into its table so auditors (and supervisors) read its log.
AUDIT_GRANTS: Mapping[str, frozenset[Role]] = {
    AUDIT_READ: frozenset({Role.auditor, Role.supervisor}),
}

_ACTION = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$")


class PermissionExpectation(NamedTuple):
    """One cell of the role x action matrix: whether ``role`` alone may do ``action``."""

    role: Role
    action: str
    allowed: bool


class PermissionTable:
    """Maps action names (``"referral.create"``) to the roles allowed to perform them.

    Anything not in the table is denied. ``ops`` may appear only on actions named ``ops.*``:
    a table that grants ``ops`` a record action is refused when it is defined, so a careless
    edit fails at import time rather than in production.
    """

    def __init__(self, service: str, grants: Mapping[str, Iterable[Role | str]]) -> None:
        """Validate and freeze the grants; raises ``ValueError`` on any mistake."""
        self.service = service
        table: dict[str, frozenset[Role]] = {}
        for action, roles in grants.items():
            if not _ACTION.match(action):
                raise ValueError(
                    f"action {action!r} must look like 'resource.verb' (lowercase, dotted)"
                )
            if isinstance(roles, str):
                raise ValueError(f"action {action!r}: give a set of roles, not one string")
            parsed: set[Role] = set()
            for role in roles:
                known = parse_role(str(role))
                if known is None:
                    raise ValueError(f"action {action!r}: unknown role {role!r}")
                parsed.add(known)
            if Role.ops in parsed and not action.startswith("ops."):
                raise ValueError(
                    f"action {action!r} may not be granted to 'ops': ops never sees a child's "
                    f"record; only 'ops.*' actions may name it"
                )
            table[action] = frozenset(parsed)
        self._grants: Mapping[str, frozenset[Role]] = table

    @property
    def actions(self) -> frozenset[str]:
        """Every action the table declares."""
        return frozenset(self._grants)

    def roles_for(self, action: str) -> frozenset[Role]:
        """The roles allowed ``action`` (empty for an undeclared action)."""
        return self._grants.get(action, frozenset())

    def allows(self, roles: Iterable[str], action: str) -> bool:
        """True when any of ``roles`` may perform ``action``. Undeclared actions: False."""
        return not self.roles_for(action).isdisjoint(roles)

    def permits(self, principal: Principal, action: str) -> bool:
        """True when ``principal`` may perform ``action``."""
        return self.allows(principal.roles, action)

    def require(self, action: str) -> Callable[..., Awaitable[Principal]]:
        """A FastAPI dependency returning the Principal if it may perform ``action``.

        Unauthenticated callers get 401 (from :func:`current_principal`); authenticated ones
        without a granting role get 403 ``{"detail": "role(s) X may not <action>"}``. Asking
        for an action the table does not declare is a programming error: it is logged now and
        at every request, and the request is denied.
        """
        declared = action in self._grants
        if not declared:
            log.error(
                "route requires an action the permission table does not declare; "
                "every request to it will be denied",
                service=self.service,
                action=action,
            )
        allowed = self._grants.get(action, frozenset())

        async def dependency(principal: Principal = Depends(current_principal)) -> Principal:
            if not allowed.isdisjoint(principal.roles):
                return principal
            if not declared:
                log.error(
                    "denied: undeclared action",
                    service=self.service,
                    action=action,
                    user=principal.user,
                )
            else:
                log.info(
                    "access denied",
                    service=self.service,
                    action=action,
                    user=principal.user,
                    roles=principal.roles_text,
                )
            roles = ", ".join(sorted(principal.roles)) or "(none)"
            raise HTTPException(status_code=403, detail=f"role(s) {roles} may not {action}")

        dependency.__name__ = f"require_{action.replace('.', '_').replace('-', '_')}"
        # Lets tests map every route to the action guarding it (see route_actions()).
        dependency.cpu_action = action  # type: ignore[attr-defined]
        return dependency

    def routes_matrix(self) -> list[PermissionExpectation]:
        """Every role x every declared action with the expected outcome, for tests.

        A test can mint a token for each ``role``, call the route guarded by ``action`` and
        assert 403 exactly when ``allowed`` is False.
        """
        return [
            PermissionExpectation(role, action, role in self._grants[action])
            for action in sorted(self._grants)
            for role in Role
        ]

    def __repr__(self) -> str:
        return f"PermissionTable({self.service!r}, {len(self._grants)} actions)"


def can_see_record(
    principal: Principal, *, assigned_teams: Collection[str], province: str | None
) -> bool:
    """Whether ``principal`` may see one record's content.

    * ``supervisor``: every record.
    * Other record roles (intake officer, investigator, victim support, forensic officer,
      ICAC analyst): only records assigned to a team they belong to; and if their token
      carries ``provinces``, only records whose province is one of them. A record with no
      province is then not visible (it cannot be shown to be in their area).
    * ``auditor`` and ``ops`` grant no record visibility at all: auditors read the audit log
      (ids and codes), ops reads health and metrics. A principal holding one of those and
      also a record role is judged by the record role alone.
    * A record assigned to no team is visible to supervisors only.

    This complements the permission table; call it after loading a record, and answer 404
    (not 403) when it is False so record ids cannot be probed.
    """
    if Role.supervisor in principal.roles:
        return True
    if principal.roles.isdisjoint(RECORD_ROLES):
        return False
    if principal.teams.isdisjoint(assigned_teams):
        return False
    return not (principal.provinces and (province is None or province not in principal.provinces))


def route_actions(app: Any, prefix: str = "/api/v1") -> dict[tuple[str, str], str | None]:
    """``(method, path) -> action`` for every route under ``prefix``; None where no
    :meth:`PermissionTable.require` guards the route (which a test should treat as a bug)."""
    from fastapi.routing import APIRoute

    def find(dependant: Any) -> str | None:
        for dep in dependant.dependencies:
            action = getattr(dep.call, "cpu_action", None)
            if action is not None:
                return action
            found = find(dep)
            if found is not None:
                return found
        return None

    def walk(routes: Any, prefix: str) -> Any:
        for route in routes:
            if isinstance(route, APIRoute):
                yield prefix + route.path, route
            elif hasattr(route, "original_router"):
                # FastAPI >= 0.165 keeps included routers whole; their prefix is on the context.
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)

    found: dict[tuple[str, str], str | None] = {}
    for path, route in walk(app.routes, ""):
        if path.startswith(prefix):
            for method in route.methods:
                found[(method, path)] = find(route.dependant)
    return found
