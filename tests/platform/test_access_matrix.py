"""Issue 4: every role x every /api/v1 route of every service, expectations generated from the
permission tables. No token: 401. A role the table does not grant: 403. A granted role gets
past authorisation (whatever the route then says about the request itself)."""

from __future__ import annotations

import importlib
import re
import uuid
from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager

from cpu_platform.cli import SERVICE_NAMES
from cpu_platform.testing.kafka_tools import bearer
from cpu_shared.security.permissions import route_actions
from cpu_shared.security.roles import Role


def build(service: str, database_url: str, bootstrap: str):  # type: ignore[no-untyped-def]
    app_module = importlib.import_module(f"cpu_{service}.app")
    config = importlib.import_module(f"cpu_{service}.config")
    settings_cls = getattr(config, f"{service.capitalize()}Settings")
    return app_module.create_app(
        settings_cls(database_url=database_url, kafka_bootstrap_servers=bootstrap)
    )


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path)


@pytest.mark.parametrize("service", SERVICE_NAMES)
async def test_every_role_on_every_route(
    service: str, kafka_bootstrap_servers: str, make_database: Callable[[str], str]
) -> None:
    app = build(service, make_database(service), kafka_bootstrap_servers)
    table = app.state.permissions
    routes = route_actions(app)
    assert routes, f"{service} has no /api/v1 route"
    unguarded = [route for route, action in routes.items() if action is None]
    assert not unguarded, f"routes without a permission check: {unguarded}"
    undeclared = {action for action in routes.values()} - set(table.actions)
    assert not undeclared, f"routes guarded by actions missing from the table: {undeclared}"

    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=90) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            for (method, path), action in sorted(routes.items()):
                url = concrete(path)
                body = {} if method in {"POST", "PUT", "PATCH"} else None
                anonymous = await client.request(method, url, json=body)
                assert anonymous.status_code == 401, (method, path, anonymous.text)
                for role in Role:
                    allowed = table.allows({role.value}, action)
                    response = await client.request(
                        method, url, json=body, headers=bearer(role.value)
                    )
                    if allowed:
                        assert response.status_code not in (401, 403), (
                            service,
                            method,
                            path,
                            role,
                            response.status_code,
                            response.text,
                        )
                    else:
                        assert response.status_code == 403, (
                            service,
                            method,
                            path,
                            role,
                            response.status_code,
                            response.text,
                        )
                        assert action in response.json()["detail"]


def test_ops_is_never_granted_a_record_action() -> None:
    for service in SERVICE_NAMES:
        table = importlib.import_module(f"cpu_{service}.permissions").PERMISSIONS
        for action in table.actions:
            if not action.startswith("ops."):
                assert Role.ops not in table.roles_for(action), (service, action)
