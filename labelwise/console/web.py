"""The console's web plumbing: templates (autoescaped), the signed-in admin, CSRF, security headers.

- Session: the ``lw_console`` cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) holds a random
  secret; SQL keeps only its hash, the tenant and the token it was made from, so revoking the token or
  signing out ends it. Tokens travel only in the sign-in form's POST body, never in a URL.
- CSRF: every state-changing request carries the session's CSRF token (a hidden ``csrf`` field, or
  the ``X-CSRF-Token`` header htmx sends) and, when the browser sends ``Origin``, comes from this host.
  The sign-in form, before any session, uses a double-submit cookie.
- Every console and docs response gets a Content-Security-Policy without inline scripts.
"""

from __future__ import annotations

import hmac
import html
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelwise.api.deps import State, state
from labelwise.console import forms
from labelwise.pipeline import consoling
from labelwise.pipeline.consoling import Admin

STATIC = Path(__file__).parent / "static"
COOKIE = "lw_console"
LOGIN_COOKIE = "lw_console_login"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI and ReDoc set style attributes and ReDoc runs a blob worker; their scripts still only
# come from this server.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)

_env = Environment(loader=PackageLoader("labelwise.console", "templates"), autoescape=select_autoescape(default=True))
_env.globals.update(slot_id=forms.slot_id)
templates = Jinja2Templates(env=_env)


class SignInRequired(Exception):
    """No live console session: sign in first."""


class Forbidden(Exception):
    """A state-changing request without the right CSRF token or from another origin."""


def render(request: Request, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
    """``template`` rendered (autoescaped) with ``context``; never cached."""
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def admin(request: Request, st: State = Depends(state)) -> Admin:
    """The signed-in admin; raises SignInRequired."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        raise SignInRequired
    with st.sessions() as session:
        who = consoling.admin_for(session, secret)
    if who is None:
        raise SignInRequired
    return who


def same_origin(request: Request) -> None:
    """Raises Forbidden when the browser says the request comes from another origin."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden("the request came from another site")


async def checked(request: Request, who: Admin = Depends(admin)) -> Admin:
    """The signed-in admin of a state-changing request whose CSRF token matches; raises Forbidden."""
    same_origin(request)
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        sent = (await request.form()).get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), who.csrf.encode()):
        raise Forbidden("the form has expired; reload the page and try again")
    return who


def set_cookie(response: Response, request: Request, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def login_token(request: Request) -> str:
    """The sign-in form's double-submit token: the cookie's, or a new one (set by the caller)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def install_handlers(app: Any) -> None:
    """HTML answers for the console's own exceptions."""

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=200, headers={"HX-Redirect": "/console/sign-in"})
        return redirect("/console/sign-in")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, e: Forbidden) -> Response:
        return render(request, "error.html", 403, title="Forbidden", message=str(e), who=None)


class SecurityHeaders:
    """Content-Security-Policy and friends on every console and docs response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/console"):
            policy = CSP
        elif path.startswith(("/docs", "/redoc")):
            policy = DOCS_CSP
        else:
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers += [
                    (b"content-security-policy", policy.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),  # no-referrer would make Origin "null",
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


ERROR_STATUS = {"not_found": (404, "Not found"), "conflict": (409, "Conflict"), "unauthorized": (401, "Unauthorized")}


def install_error_pages(app: Any) -> None:
    """Errors of console pages as HTML pages with the API's status codes; the API's stay JSON."""
    from labelwise.errors import LabelwiseError, RetryableError

    api_handler = app.exception_handlers[LabelwiseError]

    @app.exception_handler(LabelwiseError)
    async def _labelwise(request: Request, e: LabelwiseError) -> Response:
        if not request.url.path.startswith("/console"):
            return await api_handler(request, e)
        status, title = ERROR_STATUS.get(e.code, (422, "Cannot do that"))
        if isinstance(e, RetryableError):
            status, title = 503, "Unavailable"
        if request.headers.get("hx-request"):
            return HTMLResponse(f'<p class="error" role="alert">{html.escape(e.message)}</p>', status_code=status)
        return render(request, "error.html", status, title=title, message=e.message, who=None)
