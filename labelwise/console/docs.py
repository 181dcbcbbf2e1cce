"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from assets shipped in this package: no CDN, so they
work offline. Each page's script comes from a file here (no inline script)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)
VENDOR = "/console/static/vendor"

SWAGGER = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>labelwise API</title>
<link rel="stylesheet" href="{VENDOR}/swagger-ui/swagger-ui.css">
<link rel="icon" type="image/png" href="{VENDOR}/swagger-ui/favicon-32x32.png">
</head><body>
<div id="swagger-ui" data-openapi-url="/openapi.json"></div>
<script src="{VENDOR}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/console/static/swagger-init.js"></script>
</body></html>
"""

REDOC = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>labelwise API</title>
<link rel="icon" type="image/png" href="{VENDOR}/swagger-ui/favicon-32x32.png">
</head><body>
<redoc spec-url="/openapi.json"></redoc>
<script src="{VENDOR}/redoc/redoc.standalone.js"></script>
</body></html>
"""


@router.get("/docs", response_class=HTMLResponse)
def swagger() -> HTMLResponse:
    return HTMLResponse(SWAGGER)


@router.get("/redoc", response_class=HTMLResponse)
def redoc() -> HTMLResponse:
    return HTMLResponse(REDOC)
