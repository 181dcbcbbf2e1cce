"""Malformed and racing input gets a 4xx JSON error, never a 500; 5xx bodies say nothing about internals.

Each test runs the API in-process on its own database (SQLite and PostgreSQL); no worker is needed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labelwise.api.app import create_app
from labelwise.models import tenants
from labelwise.settings import Settings
from tests.apiclient import TINY


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path, database_url=db_url)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def new_tenant(client: TestClient) -> dict[str, str]:
    with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
        tenant = tenants.create_tenant(s, f"t{uuid.uuid4().hex[:8]}")
        _, token = tenants.create_token(s, tenant_id=tenant.id)
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert client.put("/v1/label-sets/tiny", json=TINY, headers=h).status_code == 201
    return h


@pytest.mark.parametrize(
    "body",
    [
        b'{"label_set": "tiny", "text": "a\\ud800b"}',  # a lone surrogate: not valid Unicode, unstorable
        b'{"label_set": "tiny", "text": "ok", "metadata": {"x": 1e999}}',  # inf: PostgreSQL's JSONB refuses it
        b'{"label_set": "tiny", "text": "ok", "metadata": {"x": "\\udfff"}}',
        b'{"label_set": "tiny", "text": "a\\u0000b"}',
    ],
)
@pytest.mark.parametrize("route", ["/v1/jobs", "/v1/classify"])
def test_unstorable_job_input_is_422(client: TestClient, body: bytes, route: str) -> None:
    h = new_tenant(client)
    r = client.post(route, content=body, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input", r.text
    assert client.get("/v1/jobs", headers=h).json()["jobs"] == []


def test_concurrent_puts_creating_one_label_set_never_500(client: TestClient) -> None:
    """Each racing PUT either wins (201/200, a version each) or is told it lost (409)."""
    h = new_tenant(client)
    codes: list[int] = []

    def put(i: int) -> None:
        doc = {**TINY, "threshold": 0.1 + i / 100}
        codes.append(client.put("/v1/label-sets/race", json=doc, headers=h).status_code)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(codes) <= {200, 201, 409} and codes.count(201) >= 1, codes
    versions = client.get("/v1/label-sets/race/versions", headers=h).json()
    assert len(versions["versions"] if isinstance(versions, dict) else versions) == codes.count(201) + codes.count(200)


def test_503_bodies_carry_no_driver_message(tmp_path: Path) -> None:
    """A database that cannot be reached: /v1, hooks and /readyz answer 503 without host, port or user."""
    url = "postgresql+psycopg://secretuser:hunter2@127.0.0.1:9/secretdb?connect_timeout=2"
    settings = Settings(home=tmp_path, database_url=url, broker_url="redis://127.0.0.1:9/0")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        answers = [
            c.get("/v1/label-sets", headers={"Authorization": "Bearer lw_x"}),
            c.post("/hooks/jira/int_abc", content=b"{}"),
            c.post("/hooks/slack/events?integration=int_abc", content=b"{}"),
            c.get("/readyz"),
        ]
    for r in answers:
        assert r.status_code == 503, (r.status_code, r.text)
        for secret in ("secretuser", "hunter2", "secretdb", "127.0.0.1", ":9", "psycopg", "connection"):
            assert secret not in r.text, (secret, r.text)


def test_a_label_set_too_big_to_embed_is_422_naming_the_cap(client: TestClient) -> None:
    h = new_tenant(client)
    labels = [{"name": f"l{i}", "examples": ["x" * 1_990 + f" {i} {j}" for j in range(100)]} for i in range(3)]
    r = client.put("/v1/label-sets/big", json={"labels": labels}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_label_set"
    assert r.json()["error"]["fields"][0]["field"] == "body.labels" and "500000" in r.text
    assert client.get("/v1/label-sets/big", headers=h).status_code == 404
