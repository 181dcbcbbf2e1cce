"""Every error the API returns is JSON: ``{"error": {"code", "message", "fields"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from labelwise.api.schemas import ErrorOut
from labelwise.errors import (
    ConflictError,
    InvalidDocumentError,
    InvalidInputError,
    LabelwiseError,
    NotFoundError,
    RetryableError,
    UnauthorizedError,
)

log = logging.getLogger(__name__)
STATUS = {UnauthorizedError: 401, NotFoundError: 404, ConflictError: 409, InvalidInputError: 422, RetryableError: 503}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    429: "rate_limited",
}


class ApiError(Exception):
    """An HTTP error with a stable code, raised by dependencies (auth, limits)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_json(
    status: int,
    code: str,
    message: str,
    *,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _status_of(e: LabelwiseError) -> int:
    for cls, status in STATUS.items():
        if isinstance(e, cls):
            return status
    return 400


def install(app: FastAPI) -> None:
    @app.exception_handler(LabelwiseError)
    async def _labelwise(_: Request, e: LabelwiseError) -> JSONResponse:
        fields = None
        if isinstance(e, InvalidDocumentError):
            fields = [{"field": x["field"], "message": x["message"]} for x in e.errors]
        elif isinstance(e, InvalidInputError) and e.field:
            fields = [{"field": e.field, "message": e.message}]
        headers = {"Retry-After": "5"} if isinstance(e, RetryableError) else None
        if isinstance(e, UnauthorizedError):
            headers = {"WWW-Authenticate": "Bearer"}
        return error_json(_status_of(e), e.code, e.message, fields=fields, headers=headers)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, e: IntegrityError) -> JSONResponse:  # a concurrent writer won the race
        log.info("integrity conflict: %s", e.orig or e)
        return error_json(409, "conflict", "a concurrent request changed the same object first; read it and retry")

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(_: Request, e: DBAPIError) -> JSONResponse:  # the driver's text names host, port, user
        log.warning("database unavailable: %s", e.orig or e)
        return error_json(503, "database_unavailable", "database unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _internal(_: Request, e: Exception) -> JSONResponse:  # logged in full, answered without internals
        log.exception("unhandled error: %s", type(e).__name__)
        return error_json(500, "internal_error", "internal error")

    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return error_json(e.status, e.code, e.message, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(p) for p in err["loc"]), "message": str(err["msg"])} for err in e.errors()]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return error_json(422, "validation_error", f"invalid request: {summary}", fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(e.status_code, f"http_{e.status_code}")
        return error_json(e.status_code, code, str(e.detail), headers=getattr(e, "headers", None))


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer."""
    text = {
        400: "Malformed request.",
        401: "Missing, malformed, revoked or unknown bearer token.",
        404: "No such object in the caller's tenant.",
        409: "Conflicts with what is stored (e.g. an idempotency key reused for another message).",
        413: "Request body too large.",
        422: "Validation failed; `fields` names each problem.",
        429: "Rate limit exceeded; see `Retry-After`.",
        503: "Database or broker unavailable; retry later.",
    }
    return {s: {"model": ErrorOut, "description": text[s]} for s in statuses}
