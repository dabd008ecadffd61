"""Bearer authentication: real tokens through a real FastAPI app."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, FastAPI

from cpu_shared.security.auth import (
    AuthenticationError,
    AuthSettings,
    DevKeysDisabledError,
    Principal,
    TokenVerifier,
    current_principal,
    ed25519_key_id,
    install_auth,
    load_dev_signing_key,
    mint_dev_token,
)


@pytest.fixture
def settings(tmp_path: Path) -> AuthSettings:
    return AuthSettings(
        dev_signing_key_file=tmp_path / "var" / "dev-signing-key.pem",
        jwks_url=None,
        dev_signing_key=None,
        allow_dev_keys=True,
        issuer="cpu-local",
        audience="cpu-platform",
        failure_limit=5,
    )


def make_app(settings: AuthSettings, verifier: TokenVerifier | None = None) -> FastAPI:
    app = FastAPI()
    install_auth(app, settings, verifier=verifier)

    @app.get("/api/v1/whoami")
    async def whoami(principal: Principal = Depends(current_principal)) -> dict:
        return {
            "user": principal.user,
            "roles": sorted(principal.roles),
            "teams": sorted(principal.teams),
            "provinces": sorted(principal.provinces),
            "token_id": principal.token_id,
        }

    return app


@pytest.fixture
async def client(settings: AuthSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def dev_claims(settings: AuthSettings, **overrides: object) -> dict:
    now = int(time.time())
    claims: dict = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": "officer-7",
        "roles": ["investigator"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "t-1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign_dev(settings: AuthSettings, claims: dict) -> str:
    key = load_dev_signing_key(settings)
    return jwt.encode(
        claims, key, algorithm="EdDSA", headers={"kid": ed25519_key_id(key.public_key())}
    )


async def test_minted_token_is_accepted(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = mint_dev_token(
        settings,
        "officer-7",
        ["investigator", "victim_support"],
        teams=["pp-team-1"],
        provinces=["12"],
    )
    r = await client.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == "officer-7"
    assert body["roles"] == ["investigator", "victim_support"]
    assert body["teams"] == ["pp-team-1"]
    assert body["provinces"] == ["12"]
    assert body["token_id"]


async def test_dev_key_file_is_created_private_and_reused(settings: AuthSettings) -> None:
    path = settings.dev_signing_key_file
    assert not path.exists()
    first = load_dev_signing_key(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_dev_signing_key(settings)
    assert ed25519_key_id(first.public_key()) == ed25519_key_id(second.public_key())


async def test_group_readable_key_file_is_refused(settings: AuthSettings) -> None:
    load_dev_signing_key(settings)
    os.chmod(settings.dev_signing_key_file, 0o644)
    with pytest.raises(RuntimeError, match="chmod 600"):
        load_dev_signing_key(settings)


async def test_missing_token_is_401_with_challenge(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/whoami")
    assert r.status_code == 401
    assert r.json() == {"detail": "missing bearer token"}
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {
                "exp": int(time.time()) - 3600,
                "iat": int(time.time()) - 7200,
                "nbf": int(time.time()) - 7200,
            },
            "token expired",
        ),
        ({"aud": "someone-else"}, "token audience not accepted"),
        ({"iss": "https://evil.example"}, "token issuer not accepted"),
        ({"nbf": int(time.time()) + 3600}, "token not yet valid"),
        ({"exp": None}, "token lacks the exp claim"),
        ({"provinces": ["1"]}, "token provinces claim malformed"),
        ({"roles": "supervisor"}, "token roles claim malformed"),
    ],
)
async def test_refused_claims_say_why(
    client: httpx.AsyncClient, settings: AuthSettings, overrides: dict, reason: str
) -> None:
    token = sign_dev(settings, dev_claims(settings, **overrides))
    r = await client.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 401
    assert r.json() == {"detail": reason}
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert token not in r.text


async def test_wrong_signature_is_refused(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    real = load_dev_signing_key(settings)
    forged = jwt.encode(
        dev_claims(settings, roles=["supervisor"]),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": ed25519_key_id(real.public_key())},
    )
    r = await client.get("/api/v1/whoami", headers=bearer(forged))
    assert r.status_code == 401
    assert r.json() == {"detail": "token signature invalid"}


async def test_tampered_payload_is_refused(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    header, _payload, signature = mint_dev_token(settings, "officer-7", ["investigator"]).split(".")
    evil = jwt.utils.base64url_encode(
        json.dumps(dev_claims(settings, roles=["supervisor"])).encode()
    )
    r = await client.get("/api/v1/whoami", headers=bearer(f"{header}.{evil.decode()}.{signature}"))
    assert r.status_code == 401
    assert r.json() == {"detail": "token signature invalid"}


async def test_token_from_another_key_is_unknown(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    other = Ed25519PrivateKey.generate()
    token = jwt.encode(
        dev_claims(settings),
        other,
        algorithm="EdDSA",
        headers={"kid": ed25519_key_id(other.public_key())},
    )
    r = await client.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 401
    assert r.json() == {"detail": "token signing key unknown"}


async def test_alg_none_is_refused(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = jwt.encode(dev_claims(settings, roles=["supervisor"]), key=None, algorithm="none")
    r = await client.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 401
    assert r.json() == {"detail": "token algorithm not accepted"}


async def test_hs256_signed_with_public_key_is_refused(
    client: httpx.AsyncClient, settings: AuthSettings
) -> None:
    # The algorithm-confusion attack: sign with HMAC using the (public) verification key.
    from cryptography.hazmat.primitives import serialization

    public_pem = (
        load_dev_signing_key(settings)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(json.dumps(dev_claims(settings)).encode())
    signing_input = header + b"." + payload
    sig = jwt.utils.base64url_encode(hmac.new(public_pem, signing_input, hashlib.sha256).digest())
    r = await client.get("/api/v1/whoami", headers=bearer((signing_input + b"." + sig).decode()))
    assert r.status_code == 401
    assert r.json() == {"detail": "token algorithm not accepted"}


async def test_garbage_token_is_malformed(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/whoami", headers=bearer("not.a.jwt-at-all"))
    assert r.status_code == 401
    assert r.json() == {"detail": "token malformed"}
    assert "not.a.jwt" not in r.text


async def test_unknown_roles_are_dropped(client: httpx.AsyncClient, settings: AuthSettings) -> None:
    token = sign_dev(settings, dev_claims(settings, roles=["investigator", "root", "SUPERVISOR"]))
    r = await client.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["roles"] == ["investigator"]


async def test_mint_refuses_unknown_role_and_bad_province(settings: AuthSettings) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        mint_dev_token(settings, "u1", ["admin"])
    with pytest.raises(ValueError, match="province"):
        mint_dev_token(settings, "u1", ["investigator"], provinces=["26"])


async def test_repeated_failures_are_throttled(settings: AuthSettings) -> None:
    transport = httpx.ASGITransport(app=make_app(settings), client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        for _ in range(settings.failure_limit):
            r = await c.get("/api/v1/whoami", headers=bearer("bad.token.value"))
            assert r.status_code == 401
        r = await c.get("/api/v1/whoami", headers=bearer("bad.token.value"))
        assert r.status_code == 429
        assert r.json() == {"detail": "too many failed authentication attempts; retry later"}
        assert 1 <= int(r.headers["retry-after"]) <= settings.failure_window_seconds
        r = await c.get("/api/v1/whoami")
        assert r.status_code == 429
        # A colleague behind the same address with a valid token is not locked out.
        good = mint_dev_token(settings, "officer-8", ["investigator"])
        assert (await c.get("/api/v1/whoami", headers=bearer(good))).status_code == 200
    # Another address is unaffected.
    transport = httpx.ASGITransport(app=transport.app, client=("203.0.113.10", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/api/v1/whoami", headers=bearer("bad.token.value"))
        assert r.status_code == 401


async def test_dev_keys_can_be_disabled(settings: AuthSettings) -> None:
    strict = settings.model_copy(update={"allow_dev_keys": False})
    with pytest.raises(DevKeysDisabledError):
        TokenVerifier(strict)
    with pytest.raises(DevKeysDisabledError):
        mint_dev_token(strict, "u1", ["investigator"])


async def test_plain_http_jwks_only_on_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        AuthSettings(jwks_url="http://idp.example/certs")
    assert AuthSettings(jwks_url="http://127.0.0.1:8080/certs").jwks_url


# -- JWKS (production path) against a real HTTP server -----------------------------------


class JwksServer:
    def __init__(self) -> None:
        self.document: dict = {"keys": []}
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def publish(self, *jwks: dict) -> None:
        self.document = {"keys": list(jwks)}


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def public_jwk(private_key: object, kid: str, alg: str) -> dict:
    algorithm = jwt.get_algorithm_by_name(alg)
    jwk = algorithm.to_jwk(private_key.public_key(), as_dict=True)  # type: ignore[attr-defined]
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def idp_claims(**overrides: object) -> dict:
    now = int(time.time())
    claims = {
        "iss": "https://idp.example/realms/cpu",
        "aud": "cpu-platform",
        "sub": "u-42",
        "roles": ["supervisor"],
        "iat": now,
        "exp": now + 300,
        "jti": "j-1",
    }
    claims.update(overrides)
    return claims


@pytest.fixture
def jwks_settings(jwks_server: JwksServer) -> AuthSettings:
    return AuthSettings(
        jwks_url=jwks_server.url,
        issuer="https://idp.example/realms/cpu",
        audience="cpu-platform",
        jwks_refresh_cooldown_seconds=30,
    )


async def test_jwks_rs256_and_es256_tokens_are_accepted(
    jwks_server: JwksServer, jwks_settings: AuthSettings
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    jwks_server.publish(public_jwk(rsa_key, "rsa-1", "RS256"), public_jwk(ec_key, "ec-1", "ES256"))
    app = make_app(jwks_settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        for key, kid, alg in ((rsa_key, "rsa-1", "RS256"), (ec_key, "ec-1", "ES256")):
            token = jwt.encode(idp_claims(), key, algorithm=alg, headers={"kid": kid})
            r = await c.get("/api/v1/whoami", headers=bearer(token))
            assert r.status_code == 200, r.text
            assert r.json()["user"] == "u-42"
            assert r.json()["roles"] == ["supervisor"]


async def test_jwks_refuses_forged_unknown_and_symmetric(
    jwks_server: JwksServer, jwks_settings: AuthSettings
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks_server.publish(public_jwk(rsa_key, "rsa-1", "RS256"))
    app = make_app(jwks_settings)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        forged = jwt.encode(idp_claims(), attacker, algorithm="RS256", headers={"kid": "rsa-1"})
        r = await c.get("/api/v1/whoami", headers=bearer(forged))
        assert (r.status_code, r.json()) == (401, {"detail": "token signature invalid"})

        fetches = jwks_server.fetches
        for i in range(5):
            unknown = jwt.encode(
                idp_claims(), attacker, algorithm="RS256", headers={"kid": f"random-{i}"}
            )
            r = await c.get("/api/v1/whoami", headers=bearer(unknown))
            assert (r.status_code, r.json()) == (401, {"detail": "token signing key unknown"})
        # Random key ids do not make us hammer the identity provider.
        assert jwks_server.fetches - fetches <= 1

        hs = jwt.encode(
            idp_claims(),
            "a-shared-secret-that-is-long-enough-000",
            algorithm="HS256",
            headers={"kid": "rsa-1"},
        )
        r = await c.get("/api/v1/whoami", headers=bearer(hs))
        assert (r.status_code, r.json()) == (401, {"detail": "token algorithm not accepted"})

        wrong_aud = jwt.encode(
            idp_claims(aud="account"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
        )
        r = await c.get("/api/v1/whoami", headers=bearer(wrong_aud))
        assert (r.status_code, r.json()) == (401, {"detail": "token audience not accepted"})


async def test_jwks_keycloak_style_roles_claim(
    jwks_server: JwksServer, jwks_settings: AuthSettings
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwks_server.publish(public_jwk(key, "ec-1", "ES256"))
    verifier = TokenVerifier(jwks_settings.model_copy(update={"roles_claim": "realm_access.roles"}))
    token = jwt.encode(
        idp_claims(roles=None, realm_access={"roles": ["auditor", "offline"]}),
        key,
        algorithm="ES256",
        headers={"kid": "ec-1"},
    )
    principal = await verifier.verify_async(token)
    assert principal.roles == frozenset({"auditor"})


async def test_jwks_unreachable_is_503(
    jwks_settings: AuthSettings, jwks_server: JwksServer
) -> None:
    jwks_server.server.shutdown()
    jwks_server.server.server_close()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app = make_app(jwks_settings.model_copy(update={"jwks_timeout_seconds": 1}))
    token = jwt.encode(idp_claims(), key, algorithm="RS256", headers={"kid": "rsa-1"})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/api/v1/whoami", headers=bearer(token))
    assert r.status_code == 503
    assert r.json() == {"detail": "authentication service unavailable"}


async def test_injected_jwks_client(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    class InMemoryJWKClient(jwt.PyJWKClient):
        def fetch_data(self) -> dict:
            return {"keys": [public_jwk(key, "k", "RS256")]}

    settings = AuthSettings(issuer="iss", audience="aud", dev_signing_key_file=tmp_path / "x.pem")
    verifier = TokenVerifier(settings, jwks_client=InMemoryJWKClient("https://idp.invalid/certs"))
    now = int(time.time())
    token = jwt.encode(
        {"iss": "iss", "aud": "aud", "sub": "s", "iat": now, "exp": now + 60, "roles": ["ops"]},
        key,
        algorithm="RS256",
        headers={"kid": "k"},
    )
    assert verifier.verify(token).roles == frozenset({"ops"})
    assert not (tmp_path / "x.pem").exists()  # the JWKS path never creates a dev key


def test_a_verified_token_is_trusted_again_until_its_window_or_exp_ends(
    settings: AuthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cpu_shared.security.auth as auth

    verifier = TokenVerifier(settings)
    full_checks: list[str] = []
    real_verify = verifier._verify

    def counting(token: str) -> tuple[Principal, float]:
        full_checks.append(token)
        return real_verify(token)

    monkeypatch.setattr(verifier, "_verify", counting)
    now = time.time()
    token = sign_dev(settings, dev_claims(settings, exp=int(now) + 600))
    short = sign_dev(settings, dev_claims(settings, exp=int(now) + 5, jti="t-2"))
    first = verifier.verify(token)
    assert verifier.verify(token) == first
    assert len(full_checks) == 1  # the second request skipped the signature check

    # Past the trust window: checked in full again (auth.time is the time module: PyJWT's
    # own clock is not moved, so the token still verifies).
    monkeypatch.setattr(auth.time, "time", lambda: now + auth.VERIFIED_TOKEN_SECONDS + 1)
    assert verifier.verify(token) == first
    assert len(full_checks) == 2

    # A token whose exp (plus leeway) has passed is never answered from what was verified.
    monkeypatch.setattr(auth.time, "time", lambda: now)
    verifier.verify(short)
    assert verifier._known(short) is not None
    monkeypatch.setattr(auth.time, "time", lambda: now + 5 + settings.leeway_seconds + 1)
    assert verifier._known(short) is None


def test_a_refused_token_is_not_remembered(settings: AuthSettings) -> None:
    verifier = TokenVerifier(settings)
    expired = sign_dev(
        settings, dev_claims(settings, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    )
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="token expired"):
            verifier.verify(expired)
    assert verifier._known(expired) is None
