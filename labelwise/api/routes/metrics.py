"""Prometheus metrics: HTTP requests of this API process, and jobs and deliveries per status (from SQL,
over all tenants; no tenant names). Scrape it from the internal network only."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from labelwise import pipeline
from labelwise.api.deps import State, state

router = APIRouter(tags=["health"])


class Metrics:
    """One registry per app, so several apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "labelwise_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=self.registry
        )
        self.jobs = Gauge("labelwise_jobs", "Jobs per status.", ["status"], registry=self.registry)
        self.deliveries = Gauge("labelwise_deliveries", "Deliveries per status.", ["status"], registry=self.registry)

    def observe(self, request: Request, status: int) -> None:
        route = getattr(request.scope.get("route"), "path", "unmatched")
        self.requests.labels(request.method, route, str(status)).inc()


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(request: Request, st: State = Depends(state)) -> Response:
    m: Metrics = request.app.state.metrics
    with st.sessions() as session:
        counts = pipeline.counts(session)
    for status in ("queued", "running", "done", "failed"):
        m.jobs.labels(status).set(counts["jobs"].get(status, 0))
    for status in ("pending", "retrying", "delivered", "dead"):
        m.deliveries.labels(status).set(counts["deliveries"].get(status, 0))
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
