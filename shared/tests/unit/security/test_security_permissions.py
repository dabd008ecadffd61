"""Deny-by-default permission tables and the record-visibility rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from cpu_shared.security.auth import AuthSettings, Principal, install_auth, mint_dev_token
from cpu_shared.security.permissions import (
    AUDIT_GRANTS,
    PermissionTable,
    Role,
    can_see_record,
)

GRANTS = {
    "referral.create": {Role.intake_officer, Role.supervisor},
    "referral.read": {Role.intake_officer, Role.investigator, Role.victim_support, Role.supervisor},
    "ops.reindex": {Role.ops},
    **AUDIT_GRANTS,
}
TABLE = PermissionTable("intake", GRANTS)


def test_ops_may_not_be_granted_a_record_action() -> None:
    with pytest.raises(ValueError, match="ops"):
        PermissionTable("intake", {"referral.read": {Role.investigator, Role.ops}})
    with pytest.raises(ValueError, match="ops"):
        PermissionTable("intake", {"referral.read": {"ops"}})
    # ...but an ops.* action may name it.
    ops_table = PermissionTable("intake", {"ops.reindex": {"ops"}})
    assert ops_table.roles_for("ops.reindex") == {Role.ops}


def test_table_refuses_unknown_roles_and_bad_action_names() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        PermissionTable("intake", {"referral.read": {"admin"}})
    with pytest.raises(ValueError, match=r"resource\.verb"):
        PermissionTable("intake", {"ReadReferral": {Role.investigator}})
    with pytest.raises(ValueError, match="set of roles"):
        PermissionTable("intake", {"referral.read": "investigator"})


def test_undeclared_action_is_denied_to_everyone() -> None:
    for role in Role:
        assert not TABLE.allows({role}, "referral.delete")
    assert TABLE.roles_for("referral.delete") == frozenset()


def test_matrix_covers_every_role_and_action() -> None:
    matrix = TABLE.routes_matrix()
    assert len(matrix) == len(Role) * len(TABLE.actions)
    assert ("ops", "referral.read", False) in matrix
    assert ("auditor", "audit.read", True) in matrix
    assert ("investigator", "audit.read", False) in matrix
    assert ("ops", "ops.reindex", True) in matrix
    # No record action is ever granted to ops.
    assert not [
        e for e in matrix if e.role == Role.ops and e.allowed and not e.action.startswith("ops.")
    ]


@pytest.fixture
def auth_settings(tmp_path: Path) -> AuthSettings:
    return AuthSettings(
        dev_signing_key_file=tmp_path / "dev.pem",
        jwks_url=None,
        allow_dev_keys=True,
        failure_limit=1000,
    )


@pytest.fixture
async def client(auth_settings: AuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_auth(app, auth_settings)
    router = APIRouter()
    for action in sorted(TABLE.actions):

        def make(action: str):  # one route per action, guarded by it
            async def route(principal: Principal = Depends(TABLE.require(action))) -> dict:
                return {"user": principal.user, "action": action}

            return route

        router.add_api_route(f"/actions/{action}", make(action), methods=["GET"])

    @router.get("/undeclared")
    async def undeclared(principal: Principal = Depends(TABLE.require("referral.purge"))) -> dict:
        return {"user": principal.user}

    app.include_router(router, prefix="/api/v1")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c


async def test_every_role_action_pair_over_http(
    client: httpx.AsyncClient, auth_settings: AuthSettings
) -> None:
    tokens = {role: mint_dev_token(auth_settings, f"user-{role}", [role]) for role in Role}
    for expectation in TABLE.routes_matrix():
        r = await client.get(
            f"/api/v1/actions/{expectation.action}",
            headers={"Authorization": f"Bearer {tokens[expectation.role]}"},
        )
        if expectation.allowed:
            assert r.status_code == 200, expectation
        else:
            assert r.status_code == 403, expectation
            assert r.json() == {
                "detail": f"role(s) {expectation.role} may not {expectation.action}"
            }


async def test_no_token_is_401_before_any_permission(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/actions/referral.read")
    assert r.status_code == 401


async def test_undeclared_action_is_403_even_for_supervisor(
    client: httpx.AsyncClient, auth_settings: AuthSettings
) -> None:
    token = mint_dev_token(auth_settings, "boss", [r.value for r in Role])
    r = await client.get("/api/v1/undeclared", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert "may not referral.purge" in r.json()["detail"]


async def test_principal_without_roles_is_403(
    client: httpx.AsyncClient, auth_settings: AuthSettings
) -> None:
    token = mint_dev_token(auth_settings, "nobody", [])
    r = await client.get(
        "/api/v1/actions/referral.read", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 403
    assert r.json() == {"detail": "role(s) (none) may not referral.read"}


def who(*roles: str, teams: tuple[str, ...] = (), provinces: tuple[str, ...] = ()) -> Principal:
    return Principal(
        user="u", roles=frozenset(roles), teams=frozenset(teams), provinces=frozenset(provinces)
    )


def test_record_rule() -> None:
    assert can_see_record(who("supervisor"), assigned_teams=set(), province=None)
    investigator = who("investigator", teams=("t1",))
    assert can_see_record(investigator, assigned_teams={"t1", "t2"}, province="12")
    assert not can_see_record(investigator, assigned_teams={"t2"}, province="12")
    assert not can_see_record(investigator, assigned_teams=set(), province="12")
    provincial = who("investigator", teams=("t1",), provinces=("12", "08"))
    assert can_see_record(provincial, assigned_teams={"t1"}, province="08")
    assert not can_see_record(provincial, assigned_teams={"t1"}, province="03")
    assert not can_see_record(provincial, assigned_teams={"t1"}, province=None)
    # Auditors and ops see no record content, whatever their teams.
    assert not can_see_record(who("auditor", teams=("t1",)), assigned_teams={"t1"}, province=None)
    assert not can_see_record(who("ops", teams=("t1",)), assigned_teams={"t1"}, province=None)
    assert not can_see_record(who(teams=("t1",)), assigned_teams={"t1"}, province=None)
