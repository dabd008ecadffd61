"""HTTP hardening shared by every service: body limits, strict content types, CORS, headers.

``harden(app)`` is called once when a service builds its FastAPI app. Everything here is pure
ASGI middleware: it sees the raw byte stream, so a body limit cannot be bypassed by a route that
reads ``request.stream()`` itself, and nothing buffers a body just to measure it (Starlette's
``BaseHTTPMiddleware`` would).

Order, outermost first: security headers -> CORS -> body limit -> content type -> the app. The
headers wrap everything, so the 413/415 answers produced here carry them too, and CORS wraps the
limits so a browser can read why its upload was refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/v1"
JSON = "application/json"
MULTIPART = "multipart/form-data"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})

#: CSP for HTML pages: scripts, styles and images from this origin only; no inline script, no
#: plugins, no framing, no <base> games. FastAPI's /docs loads Swagger from a CDN with an
#: inline bootstrap script and is therefore blocked by it; serve those assets locally (or keep
#: /docs off in production) rather than loosening this.
HTML_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: CSP for everything else (JSON, text): nothing may be loaded or executed in its context, so a
#: response rendered by a browser by mistake can do nothing.
NON_HTML_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), "
    "gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=(), "
    "interest-cohort=()"
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RequestTooLargeError(HTTPException):
    """Raised from ``receive`` when a streamed body passes the limit.

    It is an ``HTTPException`` on purpose: FastAPI re-raises those from body parsing (any other
    exception there becomes a 400 "error parsing the body"), and the app's exception handler
    renders it as ``{"detail": ...}`` with status 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large_detail(limit))


def _too_large_detail(limit: int) -> str:
    return f"request body larger than the {limit}-byte limit"


def harden(
    app: Any,
    *,
    max_body_bytes: int = 1_000_000,
    allowed_origins: Iterable[str] = (),
    multipart_prefixes: Iterable[str] = (),
    content_types: Mapping[str, Collection[str]] | None = None,
    body_limits: Mapping[str, int] | None = None,
    api_prefix: str = API_PREFIX,
    html_csp: str = HTML_CSP,
    hsts: bool = True,
) -> None:
    """Install the request limits, content-type rules, CORS policy and security headers.

    ``max_body_bytes``: bodies larger than this get 413, whether announced by Content-Length or
    streamed chunked. ``body_limits`` raises or lowers it under given path prefixes (e.g. a bulk
    import route), longest prefix first.

    ``POST``/``PUT``/``PATCH`` under ``api_prefix`` must be ``application/json`` (415 otherwise);
    routes under a ``multipart_prefixes`` entry take ``multipart/form-data`` instead, and
    ``content_types`` maps other prefixes to their own accepted media types (e.g. a raw XML
    import). A write with no body and no Content-Type is let through: there is nothing to parse.

    CORS is closed unless ``allowed_origins`` lists exact origins (``https://host[:port]``);
    ``*`` is refused. Must be called before the app starts serving.
    """
    if max_body_bytes <= 0:
        raise ValueError("max_body_bytes must be positive")
    rules: dict[str, frozenset[str]] = {}
    for prefix in multipart_prefixes:
        rules[_norm_prefix(prefix)] = frozenset({MULTIPART})
    for prefix, types in (content_types or {}).items():
        rules[_norm_prefix(prefix)] = frozenset(t.strip().lower() for t in types)
    origins = [_check_origin(origin) for origin in allowed_origins]

    # add_middleware puts each new middleware outside the previous ones.
    app.add_middleware(ContentTypeMiddleware, api_prefix=api_prefix, rules=rules)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_body_bytes=max_body_bytes,
        limits_by_prefix={_norm_prefix(p): n for p, n in (body_limits or {}).items()},
    )
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Correlation-ID"],
            expose_headers=["X-Correlation-ID", "Retry-After"],
            # Bearer tokens travel in a header; no cookie should ever be sent cross-origin.
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware, html_csp=html_csp, hsts=hsts)


def _norm_prefix(prefix: str) -> str:
    if not prefix.startswith("/"):
        raise ValueError(f"path prefix must start with '/': {prefix!r}")
    return prefix.rstrip("/") or "/"


def _under(path: str, prefix: str) -> bool:
    # Segment-aware: "/api/v1/tips" covers "/api/v1/tips/import" but not "/api/v1/tipsy".
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _longest_match(path: str, table: Mapping[str, Any]) -> Any | None:
    best: str | None = None
    for prefix in table:
        if _under(path, prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return table[best] if best is not None else None


def _check_origin(origin: str) -> str:
    origin = origin.strip()
    scheme, sep, rest = origin.partition("://")
    if origin == "*" or not sep or scheme not in {"http", "https"} or not rest or "/" in rest:
        raise ValueError(f"CORS origins must be exact 'https://host[:port]' values, not {origin!r}")
    return origin


def _route_path(scope: Scope) -> str:
    # The path routing sees: without the root_path a proxy may have mounted us under.
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


async def _send_error(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


class BodySizeLimitMiddleware:
    """413 for bodies over the limit: by Content-Length up front, or while a body streams in."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        limits_by_prefix: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limits_by_prefix = dict(limits_by_prefix or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _longest_match(_route_path(scope), self.limits_by_prefix) or self.max_body_bytes
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                await _send_error(scope, receive, send, 400, "invalid Content-Length header")
                return
            if int(declared) > limit:
                # Refused before a byte of the body is read.
                await _send_error(scope, receive, send, 413, _too_large_detail(limit))
                return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLargeError:
            # Reached only when nothing inside turned it into a response (e.g. a plain
            # Starlette route without exception middleware). If a response already began
            # there is no honest status left to send: let the server drop the connection.
            if response_started:
                raise
            await _send_error(scope, receive, send, 413, _too_large_detail(limit))


class ContentTypeMiddleware:
    """415 for API writes whose body is not of a media type the route accepts."""

    def __init__(
        self, app: ASGIApp, *, api_prefix: str, rules: Mapping[str, frozenset[str]]
    ) -> None:
        self.app = app
        self.api_prefix = _norm_prefix(api_prefix)
        self.rules = dict(rules)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        if not _under(path, self.api_prefix):
            await self.app(scope, receive, send)
            return
        allowed: frozenset[str] = _longest_match(path, self.rules) or frozenset({JSON})
        headers = Headers(scope=scope)
        content_type = headers.get("content-type")
        if content_type is None:
            empty = (
                headers.get("content-length") in (None, "0") and "transfer-encoding" not in headers
            )
            if empty:
                await self.app(scope, receive, send)
                return
            await _send_error(scope, receive, send, 415, _media_detail(allowed))
            return
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type not in allowed:
            await _send_error(scope, receive, send, 415, _media_detail(allowed))
            return
        await self.app(scope, receive, send)


def _media_detail(allowed: Collection[str]) -> str:
    return "content type must be " + " or ".join(sorted(allowed))


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response, including errors and 404s."""

    def __init__(self, app: ASGIApp, *, html_csp: str = HTML_CSP, hsts: bool = True) -> None:
        self.app = app
        self.html_csp = html_csp
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = _under(_route_path(scope), "/api")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
                if self.hsts:
                    # Ignored by browsers over plain http (local runs); binding behind TLS.
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
                is_html = headers.get("content-type", "").lower().startswith("text/html")
                headers.setdefault(
                    "Content-Security-Policy", self.html_csp if is_html else NON_HTML_CSP
                )
                if is_api:
                    # Records of children must never sit in a browser or proxy cache; this
                    # overrides whatever a route set.
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDR strings (``10.0.0.0/8``, ``::1/128``); raises ``ValueError`` on a bad one."""
    return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)


def client_address(
    conn: HTTPConnection | Scope, trusted_proxies: Iterable[IPNetwork] = ()
) -> str | None:
    """The address of the client that sent a request.

    Without ``trusted_proxies`` this is the TCP peer (uvicorn runs with ``proxy_headers`` off,
    so a client cannot choose its own address). When the peer is a trusted proxy, the
    ``X-Forwarded-For`` chain is walked from the right, skipping trusted hops: the first
    untrusted address is the client. Entries further left were written by the client itself
    and are never believed.
    """
    scope: Scope = conn.scope if isinstance(conn, HTTPConnection) else conn
    client = scope.get("client")
    peer = client[0] if client else None
    trusted = tuple(trusted_proxies)
    if peer is None or not trusted or not _in_networks(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for value in Headers(scope=scope).getlist("x-forwarded-for")
        for hop in value.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain: fall back to the proxy rather than guess
        if not any(address in network for network in trusted):
            return str(address)
    return hops[0] if hops else peer


def _in_networks(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
