"""HTTP hardening: body limits, content types, CORS and security headers."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from cpu_shared.security.http import client_address, harden

LIMIT = 1_000


def make_app(**options: object) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/things")
    async def create(body: dict) -> dict:
        return {"keys": sorted(body)}

    @app.post("/api/v1/raw")
    async def raw(request: Request) -> dict:  # reads the stream itself
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @app.post("/api/v1/things/{thing_id}/accept")
    async def accept(thing_id: str) -> dict:
        return {"accepted": thing_id}

    @app.post("/api/v1/hash-sets")
    async def upload(request: Request) -> dict:
        return {"type": request.headers["content-type"].split(";")[0]}

    @app.get("/api/v1/things")
    async def list_things() -> dict:
        return {"things": []}

    @app.get("/page", response_class=HTMLResponse)
    async def page() -> str:
        return "<!doctype html><title>x</title>"

    harden(app, max_body_bytes=LIMIT, multipart_prefixes=["/api/v1/hash-sets"], **options)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_small_json_body_passes(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/things", json={"a": 1})
    assert r.status_code == 200
    assert r.json() == {"keys": ["a"]}


async def test_oversized_body_by_content_length_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/things",
        content=b"{" + b" " * LIMIT + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json() == {"detail": f"request body larger than the {LIMIT}-byte limit"}
    assert r.headers["x-content-type-options"] == "nosniff"


def chunks(total: int, size: int = 100):  # a generator body: httpx sends it chunked
    async def gen():
        sent = 0
        while sent < total:
            yield b" " * min(size, total - sent)
            sent += size

    return gen()


@pytest.mark.parametrize("path", ["/api/v1/things", "/api/v1/raw"])
async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient, path: str) -> None:
    r = await client.post(
        path, content=chunks(LIMIT * 3), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413
    assert r.json() == {"detail": f"request body larger than the {LIMIT}-byte limit"}


async def test_chunked_body_within_limit_passes(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/raw", content=chunks(LIMIT - 10), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200
    assert r.json() == {"size": LIMIT - 10}


async def test_invalid_content_length_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/things",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": "-1"},
    )
    assert r.status_code == 400


async def test_non_json_write_is_415(client: httpx.AsyncClient) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        r = await client.post(
            "/api/v1/things", content=b'{"a": 1}', headers={"Content-Type": content_type}
        )
        assert r.status_code == 415, content_type
        assert r.json() == {"detail": "content type must be application/json"}
    r = await client.post("/api/v1/things", content=b'{"a": 1}')  # a body without a type
    assert r.status_code == 415
    r = await client.post(
        "/api/v1/things",
        content=b'{"a": 1}',
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
    )
    assert r.status_code == 200


async def test_bodyless_action_needs_no_content_type(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/things/t1/accept")
    assert r.status_code == 200


async def test_multipart_prefix(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/hash-sets", files={"file": ("h.csv", b"md5\n")}, data={"name": "x"}
    )
    assert r.status_code == 200
    assert r.json() == {"type": "multipart/form-data"}
    r = await client.post("/api/v1/hash-sets", content=b"x", headers={"Content-Type": "text/csv"})
    assert r.status_code == 415


async def test_security_headers_everywhere(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/things", "/api/v1/missing", "/page"):
        r = await client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "same-origin"
        assert "camera=()" in r.headers["permissions-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    api = await client.get("/api/v1/things")
    assert api.headers["cache-control"] == "no-store"
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    html = await client.get("/page")
    csp = html.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp


async def test_cors_closed_by_default(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/api/v1/things",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


async def test_cors_only_for_listed_origins() -> None:
    app = make_app(allowed_origins=["https://cpu.gov.kh"])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }
        r = await c.options(
            "/api/v1/things", headers={"Origin": "https://evil.example", **preflight}
        )
        assert "access-control-allow-origin" not in r.headers
        r = await c.options("/api/v1/things", headers={"Origin": "https://cpu.gov.kh", **preflight})
        assert r.headers["access-control-allow-origin"] == "https://cpu.gov.kh"
        assert "access-control-allow-credentials" not in r.headers
    with pytest.raises(ValueError):
        make_app(allowed_origins=["*"])


def test_client_address_trusts_only_configured_proxies() -> None:
    scope = {
        "type": "http",
        "client": ("10.0.0.5", 1234),
        "headers": [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.7")],
    }
    assert client_address(scope) == "10.0.0.5"
    trusted = [ipaddress.ip_network("10.0.0.0/8")]
    assert client_address(scope, trusted) == "198.51.100.7"  # not the spoofed 6.6.6.6
    outside = {**scope, "client": ("203.0.113.1", 1)}
    assert client_address(outside, trusted) == "203.0.113.1"
