"""Bearer JWT authentication (CONTRACT.md section 3).

Every ``/api/v1`` route depends on :func:`current_principal`, directly or through a permission
check. A token is accepted only when its signature, ``exp``, ``nbf``, ``iat``, ``aud`` and
``iss`` all verify; the caller learns why one was refused ("token expired") but the token
itself is never echoed, logged or stored.

Where keys come from
--------------------
* Production: ``CPU_AUTH_JWKS_URL`` names the identity provider's JWKS (e.g. Keycloak's
  ``/realms/<realm>/protocol/openid-connect/certs``). Keys are fetched with PyJWT's
  ``PyJWKClient`` (cached, refreshed on an unknown ``kid`` at most once per cooldown) and only
  ``RS256``, ``ES256`` and ``EdDSA`` are accepted. Set ``CPU_AUTH_ALLOW_DEV_KEYS=false`` there
  so that a missing JWKS URL stops the service instead of silently falling back to dev keys.
* Local runs: an **Ed25519 key pair** in ``./var/dev-signing-key.pem`` (mode 0600), created on
  first use; ``cpu token`` signs with it and the services verify with its public half.

Why Ed25519 rather than an HS256 shared secret for local runs: with a symmetric secret every
verifier can also mint tokens, and the verifier would have to accept an HMAC algorithm. With an
asymmetric dev key, *no* configuration of this module ever accepts an HMAC-signed token, so the
classic algorithm-confusion attack (an RSA public key used as an HMAC secret) and ``alg: none``
are impossible by construction, and local runs exercise the same code path as production
(asymmetric signature, ``kid``, algorithm pinned to the key type).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cpu_shared.logging import get_logger
from cpu_shared.security._files import read_or_create_private_file
from cpu_shared.security.http import IPNetwork, client_address, parse_networks
from cpu_shared.security.roles import Role, parse_role

log = get_logger(__name__)

#: Algorithms accepted from an OIDC provider's JWKS. No HMAC (the key would be public), no
#: ``none``, no RSA-PKCS1 variants with other hashes: the short list providers actually use.
JWKS_ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256", "EdDSA"})
#: The one algorithm of the local dev key.
DEV_ALGORITHM = "EdDSA"
#: Longer than any real access token; refusing early bounds the work an anonymous caller causes.
MAX_TOKEN_CHARS = 16_384
_REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")
_PROVINCE = re.compile(r"^(0[1-9]|1[0-9]|2[0-5])$")  # CONTRACT.md section 6: 01 to 25
_PRINTABLE_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # ids only: printable ASCII, no spaces
_TEAM = re.compile(r"^[\x21-\x7e]{1,100}$")
#: A verified token is trusted again without its signature check for at most this long (and
#: never past its ``exp``): officers send the same token with every request. No longer than
#: the JWKS cache, so a key withdrawn by the provider stops working as soon as it did before.
VERIFIED_TOKEN_SECONDS = 60.0
_VERIFIED_TOKENS_MAX = 4096


class AuthSettings(BaseSettings):
    """Authentication settings, from ``CPU_AUTH_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CPU_AUTH_", extra="ignore")

    issuer: str = "cpu-local"
    audience: str = "cpu-platform"
    #: The identity provider's JWKS endpoint. When set, only its keys are trusted.
    jwks_url: str | None = None
    jwks_cache_seconds: float = Field(default=300, gt=0)
    #: An unknown ``kid`` refetches the JWKS at most once per this many seconds, so forged
    #: tokens with random key ids cannot turn this service into a load generator for the IdP.
    jwks_refresh_cooldown_seconds: float = Field(default=30, ge=0)
    jwks_timeout_seconds: float = Field(default=5, gt=0)
    #: Claim holding the role list; a dotted path reaches into objects
    #: (Keycloak's default is ``realm_access.roles``).
    roles_claim: str = "roles"
    #: PEM of an Ed25519 private key for local/CI runs (overrides the key file).
    dev_signing_key: SecretStr | None = None
    dev_signing_key_file: Path = Path("./var/dev-signing-key.pem")
    #: False in production: without a JWKS URL the service then refuses to start.
    allow_dev_keys: bool = True
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    token_ttl_seconds: int = Field(default=8 * 3600, gt=0)
    #: Failed authentications allowed per client address per window before 429.
    failure_limit: int = Field(default=20, gt=0)
    failure_window_seconds: int = Field(default=60, gt=0)
    #: Reverse proxies (CIDRs) whose X-Forwarded-For is believed; empty = use the TCP peer.
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("jwks_url")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        # Keys fetched over plain http could be swapped in transit: anyone on the path could
        # then mint tokens. Loopback is allowed for tests and a local Keycloak.
        if not value:
            return None
        parsed = urlparse(value)
        if parsed.scheme == "https":
            return value
        if parsed.scheme == "http" and _is_loopback(parsed.hostname):
            return value
        raise ValueError("jwks_url must use https (plain http only for a loopback address)")

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthenticationError(Exception):
    """A token was refused. ``reason`` is a fixed phrase, safe to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthUnavailableError(Exception):
    """The identity provider's keys could not be fetched: not the caller's fault (503)."""


class DevKeysDisabledError(RuntimeError):
    """Dev keys were needed but are not allowed (production, or a JWKS URL is configured)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as proven by a verified token. Only known roles are ever present."""

    user: str
    roles: frozenset[str] = field(default_factory=frozenset)
    teams: frozenset[str] = field(default_factory=frozenset)
    provinces: frozenset[str] = field(default_factory=frozenset)
    token_id: str | None = None

    def has_role(self, role: str) -> bool:
        """True when the principal holds ``role``."""
        return role in self.roles

    @property
    def roles_text(self) -> str:
        """The roles as a sorted comma list (for audit rows and messages)."""
        return ",".join(sorted(self.roles))


# -- dev key -------------------------------------------------------------------------------


def _new_ed25519_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_dev_signing_key(settings: AuthSettings) -> Ed25519PrivateKey:
    """The local Ed25519 signing key: from ``dev_signing_key``, else the key file (created
    with mode 0600 on first use). Refused when a JWKS URL is set or dev keys are disallowed."""
    if settings.jwks_url:
        raise DevKeysDisabledError(
            "CPU_AUTH_JWKS_URL is set: tokens come from the identity provider, not a dev key"
        )
    if not settings.allow_dev_keys:
        raise DevKeysDisabledError(
            "dev signing keys are disabled (CPU_AUTH_ALLOW_DEV_KEYS=false); set CPU_AUTH_JWKS_URL"
        )
    if settings.dev_signing_key is not None:
        pem = settings.dev_signing_key.get_secret_value().encode()
    else:
        pem = read_or_create_private_file(settings.dev_signing_key_file, _new_ed25519_pem)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the dev signing key must be an Ed25519 private key (PEM, PKCS#8)")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ed25519_key_id(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint of an Ed25519 public key: its ``kid``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}, separators=(",", ":"), sort_keys=True
    )
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def mint_dev_token(
    settings: AuthSettings | None,
    user: str,
    roles: Iterable[str],
    teams: Iterable[str] = (),
    provinces: Iterable[str] = (),
    ttl: int | timedelta | None = None,
) -> str:
    """Sign a token with the local dev key (what ``cpu token`` prints).

    Unknown roles and malformed province codes are refused here rather than silently dropped,
    so a typo on the command line is an error and not a token that mysteriously gets 403.
    """
    settings = settings or AuthSettings()
    if not _PRINTABLE_ID.match(user):
        raise ValueError("user must be 1-200 printable ASCII characters without spaces")
    role_list = sorted(set(roles))
    unknown = [r for r in role_list if parse_role(r) is None]
    if unknown:
        raise ValueError(f"unknown role(s): {', '.join(unknown)}; known: {', '.join(Role)}")
    province_list = sorted(set(provinces))
    bad = [p for p in province_list if not _PROVINCE.match(p)]
    if bad:
        raise ValueError(f"province codes are two digits 01-25, not {', '.join(bad)}")
    team_list = sorted(set(teams))
    if any(not _TEAM.match(t) for t in team_list):
        raise ValueError("team ids are 1-100 printable ASCII characters without spaces")
    if ttl is None:
        seconds = settings.token_ttl_seconds
    elif isinstance(ttl, timedelta):
        seconds = int(ttl.total_seconds())
    else:
        seconds = int(ttl)
    if seconds <= 0:
        raise ValueError("ttl must be positive")

    key = load_dev_signing_key(settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": user,
        "roles": role_list,
        "iat": now,
        "nbf": now,
        "exp": now + seconds,
        "jti": str(uuid.uuid4()),
    }
    if team_list:
        claims["teams"] = team_list
    if province_list:
        claims["provinces"] = province_list
    return jwt.encode(
        claims,
        key,
        algorithm=DEV_ALGORITHM,
        headers={"kid": ed25519_key_id(key.public_key()), "typ": "JWT"},
    )


# -- verification --------------------------------------------------------------------------


class TokenVerifier:
    """Verifies bearer tokens against the configured keys and turns them into a Principal."""

    def __init__(
        self, settings: AuthSettings | None = None, *, jwks_client: jwt.PyJWKClient | None = None
    ) -> None:
        """Build from settings. ``jwks_client`` injects a ready ``PyJWKClient`` (tests)."""
        self.settings = settings or AuthSettings()
        self._jwks: jwt.PyJWKClient | None = None
        self._dev_key: Ed25519PublicKey | None = None
        self._dev_kid: str | None = None
        if jwks_client is not None or self.settings.jwks_url:
            self._jwks = jwks_client or jwt.PyJWKClient(
                str(self.settings.jwks_url),
                cache_keys=False,  # the JWK-set cache below expires; the per-key LRU never does
                cache_jwk_set=True,
                lifespan=self.settings.jwks_cache_seconds,
                timeout=self.settings.jwks_timeout_seconds,
                cooldown_duration=self.settings.jwks_refresh_cooldown_seconds,
            )
            self.algorithms = JWKS_ALGORITHMS
        else:
            private = load_dev_signing_key(self.settings)
            self._dev_key = private.public_key()
            self._dev_kid = ed25519_key_id(self._dev_key)
            self.algorithms = frozenset({DEV_ALGORITHM})
            log.warning(
                "authentication uses the local development signing key", key_id=self._dev_kid
            )
        # SHA-256 of a verified token -> (its principal, its exp, trusted until): the
        # signature check is most of a request's authentication cost. Digests, not tokens,
        # so no token is kept.
        self._verified: dict[bytes, tuple[Principal, float, float]] = {}

    @property
    def may_block(self) -> bool:
        """True when verification can do network I/O (a JWKS fetch)."""
        return self._jwks is not None

    def verify(self, token: str) -> Principal:
        """Verify ``token`` and return its Principal.

        Raises :class:`AuthenticationError` with a human reason for any refused token, and
        :class:`AuthUnavailableError` when the identity provider's keys cannot be fetched.
        """
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise AuthenticationError("token malformed")
        known = self._known(token)
        if known is not None:
            return known
        principal, expires = self._verify(token)
        if len(self._verified) >= _VERIFIED_TOKENS_MAX:
            self._verified.clear()
        self._verified[_token_digest(token)] = (
            principal,
            expires,
            time.time() + min(VERIFIED_TOKEN_SECONDS, self.settings.jwks_cache_seconds),
        )
        return principal

    def _known(self, token: str) -> Principal | None:
        """The principal of a token verified a moment ago and not expired since, else None."""
        known = self._verified.get(_token_digest(token))
        if known is None:
            return None
        principal, expires, trusted_until = known
        now = time.time()
        # PyJWT's exp rule; an expired token goes through the full verification, which
        # refuses it with its reason.
        if now < trusted_until and expires > now - self.settings.leeway_seconds:
            return principal
        return None

    def _verify(self, token: str) -> tuple[Principal, float]:
        """The full check: header, key, signature and claims; the principal and its exp."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthenticationError("token malformed") from None
        alg = header.get("alg")
        # Checked before any key lookup: "none", HS256 and friends never reach a verifier.
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthenticationError("token algorithm not accepted")
        key = self._key_for(header)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("token issuer not accepted") from None
        except jwt.InvalidIssuedAtError:
            raise AuthenticationError("token issue time invalid") from None
        except jwt.MissingRequiredClaimError as exc:
            # exc.claim is one of our own required names, never token content.
            raise AuthenticationError(f"token lacks the {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("token signature invalid") from None
        except jwt.InvalidAlgorithmError:
            raise AuthenticationError("token algorithm not accepted") from None
        except (jwt.InvalidKeyError, jwt.PyJWKError):
            raise AuthenticationError("token signing key not usable") from None
        except jwt.InvalidTokenError:
            raise AuthenticationError("token invalid") from None
        return self._principal(claims), float(claims["exp"])

    async def verify_async(self, token: str) -> Principal:
        """:meth:`verify` without blocking the event loop when a JWKS fetch may happen."""
        if self.may_block:
            if token and len(token) <= MAX_TOKEN_CHARS and (known := self._known(token)):
                return known  # no thread hop for a token verified a moment ago
            return await asyncio.to_thread(self.verify, token)
        return self.verify(token)

    def _key_for(self, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise AuthenticationError("token signing key unknown")
        if self._jwks is None:
            # A kid is optional for the single dev key, but a different one means another
            # key signed it (e.g. the dev key file was regenerated): say so plainly.
            if kid is not None and kid != self._dev_kid:
                raise AuthenticationError("token signing key unknown")
            return self._dev_key
        if kid is None:
            raise AuthenticationError("token signing key unknown")
        try:
            signing_key = self._jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.error("identity provider keys unreachable", error=type(exc).__name__)
            raise AuthUnavailableError("identity provider keys unreachable") from None
        except jwt.PyJWKSetError as exc:
            log.error("identity provider returned no usable keys", error=type(exc).__name__)
            raise AuthUnavailableError("identity provider keys unusable") from None
        except jwt.PyJWKClientError:
            raise AuthenticationError("token signing key unknown") from None
        # PyJWT also refuses a token whose alg differs from the key's; this stops a JWKS that
        # (wrongly) publishes e.g. an HMAC "oct" key from ever being used.
        if signing_key.algorithm_name not in JWKS_ALGORITHMS:
            raise AuthenticationError("token algorithm not accepted")
        return signing_key

    def _principal(self, claims: dict[str, Any]) -> Principal:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not _PRINTABLE_ID.match(sub):
            raise AuthenticationError("token subject malformed")
        raw_roles = _claim_path(claims, self.settings.roles_claim)
        roles = _string_set(raw_roles, "roles")
        # Unknown roles are dropped, never mapped to anything: they grant nothing.
        known = frozenset(r for r in (parse_role(v) for v in roles) if r is not None)
        teams = _string_set(claims.get("teams"), "teams")
        if any(not _TEAM.match(t) for t in teams):
            raise AuthenticationError("token teams claim malformed")
        provinces = _string_set(claims.get("provinces"), "provinces")
        # Provinces *restrict* what a principal sees; silently dropping a malformed entry
        # could widen access, so a malformed claim refuses the token instead.
        if any(not _PROVINCE.match(p) for p in provinces):
            raise AuthenticationError("token provinces claim malformed")
        jti = claims.get("jti")
        return Principal(
            user=sub,
            roles=known,
            teams=teams,
            provinces=provinces,
            token_id=jti if isinstance(jti, str) and len(jti) <= 200 else None,
        )


def _token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _claim_path(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _string_set(value: Any, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthenticationError(f"token {name} claim malformed")
    return frozenset(value)


# -- throttling ----------------------------------------------------------------------------


class FailureThrottle:
    """Counts failed authentications per client address in a moving window (``limits``).

    In memory, so per process: behind several replicas each counts on its own, and the
    ingress must rate-limit too. IPv6 clients are counted per /64, since one host commonly
    holds a whole /64 and could otherwise rotate addresses to escape the count.
    """

    def __init__(self, limit: int, window_seconds: int) -> None:
        """Allow ``limit`` failures per ``window_seconds`` per client before refusing."""
        self._item = RateLimitItemPerSecond(limit, window_seconds)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @staticmethod
    def _bucket(address: str | None) -> str:
        if address is None:
            return "unknown"
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return address
        if ip.version == 6:
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    def blocked(self, address: str | None) -> bool:
        """True when this client has used up its failures for the current window."""
        return not self._limiter.test(self._item, self._bucket(address))

    def record_failure(self, address: str | None) -> None:
        """Count one failed authentication."""
        self._limiter.hit(self._item, self._bucket(address))

    def retry_after(self, address: str | None) -> int:
        """Whole seconds until the oldest counted failure leaves the window (at least 1)."""
        stats = self._limiter.get_window_stats(self._item, self._bucket(address))
        return max(1, math.ceil(stats.reset_time - time.time()))


class Authenticator:
    """A verifier plus the failure throttle: what :func:`current_principal` uses."""

    def __init__(
        self,
        settings: AuthSettings | None = None,
        *,
        verifier: TokenVerifier | None = None,
        throttle: FailureThrottle | None = None,
    ) -> None:
        """Build from settings; ``verifier`` / ``throttle`` replace the defaults."""
        self.settings = settings or (verifier.settings if verifier else AuthSettings())
        self.verifier = verifier or TokenVerifier(self.settings)
        self.throttle = throttle or FailureThrottle(
            self.settings.failure_limit, self.settings.failure_window_seconds
        )
        self.trusted_proxies: tuple[IPNetwork, ...] = parse_networks(self.settings.trusted_proxies)

    async def authenticate(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> Principal:
        """The Principal of the request, or an HTTPException (401, 429 or 503)."""
        address = client_address(request, self.trusted_proxies)
        # Shared with the audit log, so both record the same client address.
        request.state.client_ip = address
        blocked = self.throttle.blocked(address)
        if credentials is None or not credentials.credentials:
            self._fail(address, blocked, "missing bearer token", invalid=False)
        try:
            principal = await self.verifier.verify_async(credentials.credentials)
        except AuthenticationError as exc:
            self._fail(address, blocked, exc.reason, invalid=True)
        except AuthUnavailableError:
            raise HTTPException(
                status_code=503,
                detail="authentication service unavailable",
                headers={"Retry-After": "5"},
            ) from None
        # A valid token is let through even from a throttled address: the throttle slows
        # guessing, but must not let one bad actor behind a shared office NAT lock out the
        # colleagues who share its address.
        request.state.principal = principal
        return principal

    def _fail(self, address: str | None, blocked: bool, reason: str, *, invalid: bool) -> NoReturn:
        if blocked:
            log.warning("authentication throttled", client_ip=address)
            raise HTTPException(
                status_code=429,
                detail="too many failed authentication attempts; retry later",
                headers={"Retry-After": str(self.throttle.retry_after(address))},
            )
        self.throttle.record_failure(address)
        log.info("authentication refused", reason=reason, client_ip=address)
        # RFC 6750: no error code when credentials are absent, invalid_token otherwise.
        challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
        raise HTTPException(status_code=401, detail=reason, headers={"WWW-Authenticate": challenge})


_default_lock = threading.Lock()


def install_auth(
    app: FastAPI,
    settings: AuthSettings | None = None,
    *,
    verifier: TokenVerifier | None = None,
    throttle: FailureThrottle | None = None,
) -> Authenticator:
    """Attach an :class:`Authenticator` to ``app`` (do it at startup, so key problems surface
    before the first request). Without it one is built from the environment on first use."""
    authenticator = Authenticator(settings, verifier=verifier, throttle=throttle)
    app.state.cpu_authenticator = authenticator
    return authenticator


def get_authenticator(app: Any) -> Authenticator:
    """The app's Authenticator, building the default from ``CPU_AUTH_*`` once if needed."""
    existing = getattr(app.state, "cpu_authenticator", None)
    if existing is not None:
        return existing
    with _default_lock:
        existing = getattr(app.state, "cpu_authenticator", None)
        if existing is None:
            existing = Authenticator()
            app.state.cpu_authenticator = existing
        return existing


bearer_scheme = HTTPBearer(
    auto_error=False,  # we answer 401 ourselves, with a reason and the right challenge
    description="A JWT from the identity provider (or `cpu token` locally).",
)


async def current_principal(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Principal:
    """FastAPI dependency: the verified caller, or 401 (missing/invalid), 429 or 503."""
    return await get_authenticator(request.app).authenticate(request, credentials)
