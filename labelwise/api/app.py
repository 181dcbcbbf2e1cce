"""The FastAPI application, built from Settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelwise import __version__, console
from labelwise.api import errors
from labelwise.api.deps import RateLimiter, State
from labelwise.api.routes import admin, health, hooks, integrations, jobs, labelsets, metrics, previews, tenant
from labelwise.api.tokens import TokenCache
from labelwise.crypto import secret_box
from labelwise.models.db import make_engine, make_session_factory
from labelwise.priority import share_the_gil
from labelwise.settings import Settings

DESCRIPTION = """Zero-shot text classification on a message queue.

Every `/v1` call needs `Authorization: Bearer <token>` (create one with `labelwise tenant create NAME`
or `labelwise token create --tenant NAME`). A token sees only its own tenant's data: another tenant's
job or label set is a 404. Every error is JSON: `{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(settings: Settings) -> FastAPI:
    from labelwise.worker.app import create_app as create_celery

    settings.ensure_home()
    share_the_gil()  # one tenant's big request does not hold the GIL from another's (labelwise.priority)
    engine = make_engine(settings.resolved_database_url())
    st = State(
        settings=settings,
        sessions=make_session_factory(engine),
        celery=create_celery(settings),
        limiter=RateLimiter(settings.rate_limit_per_min),
        box=secret_box(settings),
        tokens=TokenCache(settings.token_cache_s),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        st.celery.close()
        engine.dispose()

    # /docs and /redoc come from packaged assets (labelwise.console.docs): they work offline.
    app = FastAPI(
        title="labelwise",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.labelwise = st
    app.state.metrics = metrics.Metrics()

    @app.middleware("http")
    async def _count(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        app.state.metrics.observe(request, response.status_code)
        return response

    errors.install(app)
    for module in (jobs, labelsets, previews, integrations, tenant, hooks, health, metrics, admin):
        app.include_router(module.router)
    console.install(app)  # the tenant admin console under /console, /docs, /redoc
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)  # type: ignore[arg-type]

    return app


class BodyLimit:
    """413 for request bodies over ``max_bytes``, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        response = errors.error_json(413, "body_too_large", f"request body over {self.max_bytes} bytes")
        await response({"type": "http"}, _no_receive, send)


class _TooLarge(Exception):
    pass


async def _no_receive() -> Any:
    return {"type": "http.disconnect"}
