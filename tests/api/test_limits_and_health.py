"""Body size, rate limit, health and readiness."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labelwise.api.app import create_app
from labelwise.settings import Settings
from tests.apiclient import Api, settings_for

EMBEDDED = pytest.mark.parametrize("stack", ["embedded"], indirect=True)


@EMBEDDED
def test_oversized_bodies_are_413(api: Api) -> None:
    with TestClient(create_app(settings_for(api.stack, max_body_bytes=2048))) as client:
        _, h = api.tenant()
        r = client.post(
            "/v1/jobs",
            content=b'{"label_set": "x", "text": "' + b"a" * 4096 + b'"}',
            headers={**h, "Content-Type": "application/json"},
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


@EMBEDDED
def test_rate_limit_is_429_with_retry_after_per_tenant(api: Api) -> None:
    with TestClient(create_app(settings_for(api.stack, rate_limit_per_min=3))) as client:
        _, a = api.tenant()
        _, b = api.tenant()
        codes = [client.get("/v1/label-sets", headers=a).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.get("/v1/label-sets", headers=a)
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
        assert client.get("/v1/label-sets", headers=b).status_code == 200  # another tenant is not affected


@EMBEDDED
def test_health_and_readiness(api: Api) -> None:
    assert api.client.get("/healthz").json()["status"] == "ok"
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "broker": "ok", "worker": "ok"}


def test_readyz_needs_a_worker_seen_recently(tmp_path: Path) -> None:
    """No heartbeat: 503 naming the worker; a fresh one: 200; once it is older than 4 intervals: 503 again."""
    from labelwise import pipeline
    from labelwise.models.db import make_engine, make_session_factory, upgrade

    settings = Settings(home=tmp_path, worker_heartbeat_s=0.5)
    settings.ensure_home()
    upgrade(settings.resolved_database_url())
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["worker"] == "unavailable: no worker seen in the last 2 s"
        assert r.json()["checks"]["database"] == "ok" and r.json()["checks"]["broker"] == "ok"
        engine = make_engine(settings.resolved_database_url())
        pipeline.heartbeat(make_session_factory(engine), name="w1@host/1", host="host", pid=1, messages=0)
        engine.dispose()
        assert client.get("/readyz").status_code == 200
        time.sleep(2.2)
        assert client.get("/readyz").json()["checks"]["worker"].startswith("unavailable")


def test_not_ready_without_database_or_broker(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}",
        broker_url="redis://127.0.0.1:1/0",
    )
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        assert r.json()["checks"]["database"].startswith("unavailable")
        assert r.json()["checks"]["broker"].startswith("unavailable")
        assert client.get("/healthz").status_code == 200


@EMBEDDED
def test_unknown_paths_and_methods_are_json(api: Api) -> None:
    assert api.client.get("/v1/nothing").json()["error"]["code"] == "not_found"
    r = api.client.patch("/v1/jobs")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


@EMBEDDED
def test_metrics_count_requests_jobs_and_deliveries(api: Api) -> None:
    _, h = api.tenant_with_set()
    with TestClient(create_app(settings_for(api.stack, metrics_cache_s=0))) as client:  # counts not cached
        client.post("/v1/classify", json={"label_set": "tiny", "text": "charged twice"}, headers=h)
        text = client.get("/metrics").text
    assert 'labelwise_http_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    done = next(line for line in text.splitlines() if line.startswith('labelwise_jobs{status="done"}'))
    assert float(done.split()[-1]) >= 1
    assert 'labelwise_deliveries{status="dead"}' in text
