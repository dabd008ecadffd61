"""Server-rendered pages for the unit's officers: Jinja2, htmx, English and Khmer.

A service builds one :class:`WebUI` and mounts :meth:`WebUI.router` at ``/ui``. Pages are
authenticated with the same bearer JWTs as the API, carried in an HttpOnly, SameSite=Strict
cookie set at ``/ui/login``; page writes must come from the page's own origin. Text is
translated with gettext catalogues (Babel): the shared ``translations/km.po`` plus the
service's own.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from cpu_shared.security.auth import AuthenticationError, Principal, get_authenticator
from cpu_shared.security.permissions import PermissionTable

HERE = Path(__file__).parent
LANGUAGES = ("en", "km")
SESSION_COOKIE = "cpu_session"
LANG_COOKIE = "cpu_lang"


class LoginRequired(Exception):
    """Raised by page dependencies when the browser has no valid session: go to the login page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def load_translations(po_files: Iterable[Path]) -> Translations:
    """One gettext catalogue from .po files, later files overriding earlier ones."""
    merged: Translations | None = None
    for path in po_files:
        if not path.exists():
            continue
        with path.open("rb") as handle:
            catalog = read_po(handle)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        translations = Translations(fp=buffer)
        if merged is None:
            merged = translations
        else:
            merged.merge(translations)
    return merged or Translations()


class WebUI:
    """Templates, translations, sessions and static files for one service's pages."""

    def __init__(
        self,
        *,
        service: str,
        title: str,
        templates_dir: Path,
        permissions: PermissionTable,
        translations_dir: Path | None = None,
        nav: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.service = service
        self.title = title
        self.permissions = permissions
        self.nav = list(nav)
        env = Environment(
            loader=ChoiceLoader(
                [FileSystemLoader(templates_dir), FileSystemLoader(HERE / "templates")]
            ),
            autoescape=select_autoescape(["html"]),
            extensions=["jinja2.ext.i18n"],
        )
        self.templates = Jinja2Templates(env=env)
        self.translations = {
            "km": load_translations(
                [
                    HERE / "translations" / "km.po",
                    *([translations_dir / "km.po"] if translations_dir else []),
                ]
            ),
        }

    # -- language -----------------------------------------------------------------------------

    def language(self, request: Request) -> str:
        chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
        if chosen in LANGUAGES:
            return chosen
        accept = request.headers.get("accept-language", "").lower()
        return "km" if accept.startswith("km") else "en"

    def gettext(self, lang: str) -> Callable[[str], str]:
        translations = self.translations.get(lang)
        return translations.gettext if translations else (lambda text: text)

    # -- rendering ----------------------------------------------------------------------------

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        lang = self.language(request)
        translate = self.gettext(lang)
        env = self.templates.env
        env.install_gettext_callables(  # type: ignore[attr-defined]
            translate, lambda s, p, n: translate(s if n == 1 else p), newstyle=True
        )
        response = self.templates.TemplateResponse(
            request,
            name,
            {
                "lang": lang,
                "ui": self,
                "principal": getattr(request.state, "principal", None),
                **(context or {}),
            },
            status_code=status_code,
        )
        if request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict", httponly=True, path="/ui"
            )
        return response

    # -- sessions -----------------------------------------------------------------------------

    def page(self, action: str) -> Callable[[Request], Awaitable[Principal]]:
        """A page dependency: the signed-in officer, allowed ``action`` (else 403).

        Writes (POST and the like) must come from this origin: SameSite=Strict keeps the cookie
        off cross-site requests, and the Origin check is a second lock on the same door.
        """
        allowed = self.permissions.roles_for(action)

        async def dependency(request: Request) -> Principal:
            token = request.cookies.get(SESSION_COOKIE)
            if not token:
                raise LoginRequired(str(request.url.path))
            try:
                principal = await get_authenticator(request.app).verifier.verify_async(token)
            except AuthenticationError:
                raise LoginRequired(str(request.url.path)) from None
            if request.method not in ("GET", "HEAD") and not _same_site_write(request):
                raise HTTPException(403, "cross-site form submission refused")
            request.state.principal = principal
            if allowed.isdisjoint(principal.roles):
                raise HTTPException(
                    403, f"role(s) {', '.join(sorted(principal.roles))} may not {action}"
                )
            return principal

        dependency.cpu_action = action  # type: ignore[attr-defined]
        return dependency

    def router(self) -> APIRouter:
        """``/ui/login``, ``/ui/logout`` and ``/ui/static``; service pages add their own."""
        router = APIRouter(include_in_schema=False)

        @router.get("/login", response_class=HTMLResponse)
        async def login_form(request: Request, next: str = "/ui/") -> HTMLResponse:
            return self.render(request, "login.html", {"next": _safe_next(next)})

        @router.post("/login")
        async def login(
            request: Request, token: str = Form(..., max_length=8192), next: str = Form("/ui/")
        ) -> Response:
            try:
                await get_authenticator(request.app).verifier.verify_async(token.strip())
            except AuthenticationError as exc:
                return self.render(
                    request,
                    "login.html",
                    {"next": _safe_next(next), "error": exc.reason},
                    status_code=401,
                )
            response = RedirectResponse(_safe_next(next), status_code=303)
            response.set_cookie(
                SESSION_COOKIE,
                token.strip(),
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/ui",
            )
            return response

        @router.post("/logout")
        async def logout() -> Response:
            response = RedirectResponse("/ui/login", status_code=303)
            response.delete_cookie(SESSION_COOKIE, path="/ui")
            return response

        return router

    def install(self, app: Any, pages: APIRouter) -> None:
        """Mount the static files, the session routes and the service's pages under ``/ui``."""
        app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
        app.include_router(self.router(), prefix="/ui")
        app.include_router(pages, prefix="/ui")

        @app.exception_handler(LoginRequired)
        async def to_login(_request: Request, exc: LoginRequired) -> Response:
            return RedirectResponse(f"/ui/login?next={quote(exc.next_url)}", status_code=303)


def _same_site_write(request: Request) -> bool:
    """A page write from this site. Fetch Metadata answers when the browser sends it;
    otherwise the Origin header must be this host's (absent only for non-browser clients)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.url.netloc


def _safe_next(target: str) -> str:
    # Only paths on this site: never an open redirect to another host.
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui/"):
        return "/ui/"
    return target


__all__ = ["LANGUAGES", "LoginRequired", "WebUI", "load_translations"]
