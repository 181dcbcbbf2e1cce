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
    responses={
        503: {"model": Health, "description": "The database or the broker cannot be reached, or no worker is alive."}
    },
    summary="The database and the broker are reachable and a worker is running",
)
def readyz(st: State = Depends(state)) -> JSONResponse:
    """`checks.worker` is ok when some worker process sent a heartbeat (every
    `LABELWISE_WORKER_HEARTBEAT_S`) in the last four heartbeat intervals."""
    checks = pipeline.readiness(st.sessions, st.celery, worker_within_s=4 * st.settings.worker_heartbeat_s)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)
