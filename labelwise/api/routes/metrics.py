"""Prometheus metrics: HTTP requests of this API process, and jobs and deliveries per status (from SQL,
over all tenants; no tenant names). Label values are bounded (a method we do not serve counts as
"other", a path no route matches as "unmatched"); the SQL counts are cached for ``metrics_cache_s``;
``metrics_token`` makes it need a bearer token."""

from __future__ import annotations

import hmac
import math
import threading
import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from labelwise import pipeline
from labelwise.api import errors
from labelwise.api.deps import State, state
from labelwise.api.errors import ApiError

router = APIRouter(tags=["health"])
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
metrics_bearer = HTTPBearer(auto_error=False, description="LABELWISE_METRICS_TOKEN, when it is set.")


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self._counted_at = -math.inf
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "labelwise_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=self.registry
        )
        self.jobs = Gauge("labelwise_jobs", "Jobs per status.", ["status"], registry=self.registry)
        self.deliveries = Gauge("labelwise_deliveries", "Deliveries per status.", ["status"], registry=self.registry)

    def observe(self, request: Request, status: int) -> None:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        method = request.method if request.method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()

    def refresh(self, sessions: sessionmaker[Session], *, max_age_s: float) -> None:
        """Count jobs and deliveries per status unless the last count is younger than ``max_age_s``."""
        with self._lock:
            if time.monotonic() - self._counted_at < max_age_s:
                return
            with sessions() as session:
                counts = pipeline.counts(session)
            for status in ("queued", "running", "done", "failed"):
                self.jobs.labels(status).set(counts["jobs"].get(status, 0))
            for status in ("pending", "retrying", "delivered", "dead"):
                self.deliveries.labels(status).set(counts["deliveries"].get(status, 0))
            self._counted_at = time.monotonic()


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **errors.responses(401),
    },
)
def metrics(
    request: Request,
    st: State = Depends(state),
    credentials: HTTPAuthorizationCredentials | None = Depends(metrics_bearer),
) -> Response:
    """With `LABELWISE_METRICS_TOKEN` set, only `Authorization: Bearer <token>` may read it (401)."""
    expected = st.settings.metrics_token
    if expected is not None:
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise ApiError(401, "unauthorized", "GET /metrics needs the metrics token", {"WWW-Authenticate": "Bearer"})
    m: Metrics = request.app.state.metrics
    m.refresh(st.sessions, max_age_s=st.settings.metrics_cache_s)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
