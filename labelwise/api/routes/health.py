"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from labelwise import pipeline
from labelwise.api.deps import State, state
from labelwise.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database or the broker cannot be reached."}},
    summary="The database and the broker are reachable",
)
def readyz(st: State = Depends(state)) -> JSONResponse:
    checks = pipeline.readiness(st.sessions, st.celery)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)
