"""Prometheus metrics: HTTP requests of this API process, and jobs and deliveries per status (from SQL,
over all tenants; no tenant names). Label values are bounded (a method we do not serve counts as "other", a
path no route matches as "unmatched"); ``metrics_token`` makes it need a bearer token.

The SQL counts are taken at most once per ``metrics_cache_s``. Open work (jobs queued and running,
deliveries pending and retrying) is counted from small partial indexes. Settled work (done, failed,
delivered, dead) grows without bound, and counting it reads the whole table (seconds at tens of millions
of jobs): while a count takes under ``SYNC_UNDER_S`` it is done with the others; once it takes longer, a
thread counts it again at most every ``SETTLED_EVERY_S`` and a scrape reports the last count, never
waiting for one. Before its first count, an API process asks PostgreSQL's planner how big the jobs table
is: from ``BIG_ROWS`` on, even the first scrape does not wait (2.5 s at 10,000,000 jobs); the settled
gauges are then missing from the scrapes before the first background count ends."""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from labelwise import pipeline
from labelwise.api import errors
from labelwise.api.deps import State, state
from labelwise.api.errors import ApiError

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
metrics_bearer = HTTPBearer(auto_error=False, description="LABELWISE_METRICS_TOKEN, when it is set.")
SETTLED_EVERY_S = 60.0
SYNC_UNDER_S = 0.02
BIG_ROWS = 100_000  # counting this many rows takes about SYNC_UNDER_S here


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "labelwise_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=self.registry
        )
        self.jobs = Gauge("labelwise_jobs", "Jobs per status.", ["status"], registry=self.registry)
        self.deliveries = Gauge("labelwise_deliveries", "Deliveries per status.", ["status"], registry=self.registry)
        self.settled: dict[str, dict[str, int]] | None = None  # the last count of settled work
        self.count_s: float | None = None  # how long that count took
        self._settled_at = -SETTLED_EVERY_S
        self._counting = threading.Lock()
        self._counted_at = -math.inf
        self._lock = threading.Lock()

    def refresh_settled(self, st: State) -> None:
        """Count settled work: now while that is quick, else in a thread if the last count is old."""
        if self.count_s is None and self._looks_big(st):
            self.count_s = math.inf  # slow until a count (in the background) says otherwise
        if self.count_s is not None and self.count_s >= SYNC_UNDER_S:
            if time.monotonic() - self._settled_at >= SETTLED_EVERY_S and self._counting.acquire(blocking=False):
                self._settled_at = time.monotonic()
                threading.Thread(target=self._count, args=(st,), name="labelwise-metrics-count", daemon=True).start()
            return
        with self._counting:
            self._count(st, locked=True)

    @staticmethod
    def _looks_big(st: State) -> bool:
        with st.sessions() as session:
            rows = pipeline.estimated_jobs(session)
        return rows is not None and rows >= BIG_ROWS

    def _count(self, st: State, *, locked: bool = False) -> None:
        t0 = time.monotonic()
        try:
            with st.sessions() as session:
                self.settled = pipeline.counts(session)
            self.count_s = time.monotonic() - t0
        except Exception as e:  # the next scrape tries again
            log.warning("metrics: could not count settled jobs and deliveries: %s", e)
            self._settled_at = -SETTLED_EVERY_S
        finally:
            if not locked:
                self._counting.release()

    def observe(self, request: Request, status: int) -> None:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        method = request.method if request.method in METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()

    def refresh(self, st: State) -> None:
        """Count jobs and deliveries per status unless the last count is younger than ``metrics_cache_s``."""
        with self._lock:
            if time.monotonic() - self._counted_at < st.settings.metrics_cache_s:
                return
            self.refresh_settled(st)
            with st.sessions() as session:
                counts = pipeline.open_counts(session)
            for status in ("queued", "running"):
                self.jobs.labels(status).set(counts["jobs"].get(status, 0))
            for status in ("pending", "retrying"):
                self.deliveries.labels(status).set(counts["deliveries"].get(status, 0))
            if self.settled is not None:
                for status in ("done", "failed"):
                    self.jobs.labels(status).set(self.settled["jobs"].get(status, 0))
                for status in ("delivered", "dead"):
                    self.deliveries.labels(status).set(self.settled["deliveries"].get(status, 0))
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
    m.refresh(st)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
