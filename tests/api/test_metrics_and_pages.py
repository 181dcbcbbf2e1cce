"""Bounded cost of what anyone can ask for: /metrics has bounded label values, cheap scrapes and an
optional token; a page of GET /v1/jobs stops before it passes LABELWISE_MAX_PAGE_BYTES."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from labelwise.api.app import create_app
from labelwise.models import tenants
from labelwise.models.db import upgrade
from labelwise.settings import Settings
from tests.apiclient import TINY


def make_client(tmp_path: Path, **over: Any) -> TestClient:
    settings = Settings(home=tmp_path, **over)
    settings.ensure_home()
    upgrade(settings.resolved_database_url())
    return TestClient(create_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, max_page_bytes=200_000) as c:
        yield c


def new_tenant(client: TestClient) -> dict[str, str]:
    with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
        tenant = tenants.create_tenant(s, f"t{uuid.uuid4().hex[:8]}")
        _, token = tenants.create_token(s, tenant_id=tenant.id)
    h = {"Authorization": f"Bearer {token}"}
    assert client.put("/v1/label-sets/tiny", json=TINY, headers=h).status_code == 201
    return h


def test_made_up_http_methods_add_one_series(client: TestClient) -> None:
    for i in range(200):
        client.request(f"X{i}", "/v1/jobs")
    series = [
        line for line in client.get("/metrics").text.splitlines() if line.startswith("labelwise_http_requests_total")
    ]
    methods = {line.split('method="')[1].split('"')[0] for line in series}
    assert methods <= {"GET", "other"} and "other" in methods and len(series) <= 4, series


def test_scrapes_reuse_the_counts_for_metrics_cache_s(client: TestClient) -> None:
    """20 scrapes within the cache time: one GROUP BY per table, not twenty."""
    engine = client.app.state.labelwise.sessions.kw["bind"]  # type: ignore[attr-defined]
    grouped: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: grouped.append(a[2]) if "GROUP BY" in a[2] else None)
    for _ in range(20):
        assert client.get("/metrics").status_code == 200
    assert 0 < len(grouped) <= 4, grouped  # jobs and deliveries, open and settled, counted once


def test_the_metrics_token_is_required_when_set(tmp_path: Path) -> None:
    with make_client(tmp_path, metrics_token="m-secret") as client:
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        ok = client.get("/metrics", headers={"Authorization": "Bearer m-secret"})
        assert ok.status_code == 200 and "labelwise_jobs" in ok.text


def test_a_jobs_page_stops_at_its_byte_cap_and_the_cursor_goes_on(client: TestClient) -> None:
    h = new_tenant(client)
    big = {"blob": "x" * 60_000}
    ids = {
        client.post("/v1/jobs", json={"label_set": "tiny", "text": f"m{i}", "metadata": big}, headers=h).json()[
            "job_id"
        ]
        for i in range(12)
    }
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        r = client.get("/v1/jobs", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}, headers=h)
        assert r.status_code == 200 and len(r.content) <= 200_000 + 1_000, len(r.content)
        seen += [j["job_id"] for j in r.json()["jobs"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen)) and pages >= 4


def test_one_job_over_the_cap_still_makes_a_page(tmp_path: Path) -> None:
    with make_client(tmp_path, max_page_bytes=1_024) as client:
        h = new_tenant(client)
        for i in range(2):
            body = {"label_set": "tiny", "text": f"t{i}", "metadata": {"note": "y" * 3_000}}
            assert client.post("/v1/jobs", json=body, headers=h).status_code == 202
        first = client.get("/v1/jobs", headers=h).json()
        assert len(first["jobs"]) == 1 and first["next_cursor"]
        second = client.get("/v1/jobs", params={"cursor": first["next_cursor"]}, headers=h).json()
        assert len(second["jobs"]) == 1 and second["next_cursor"] is None
        assert json.dumps(first) != json.dumps(second)
