"""The tenant admin console: server-rendered pages (Jinja2 + htmx, every asset in this package) served
by the API process under ``/console``, plus ``/docs`` and ``/redoc`` from packaged assets.

``install(app)`` mounts it; the pages call ``labelwise.pipeline`` like the API's routes do.
"""

from __future__ import annotations

from typing import Any


def install(app: Any) -> None:
    """Mount the console's routes, its static files, /docs and /redoc, and its security headers."""
    from fastapi.staticfiles import StaticFiles

    from labelwise.console import activity, docs, editor, evals, sets, web

    for module in (sets, editor, activity, evals, docs):
        app.include_router(module.router)
    app.mount("/console/static", StaticFiles(directory=web.STATIC), name="console-static")
    web.install_handlers(app)
    web.install_error_pages(app)
    app.add_middleware(web.SecurityHeaders)
