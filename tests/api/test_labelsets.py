"""/v1/label-sets: versions, no-op edits, rollback, delete, validation; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from labelwise.api.app import create_app
from tests.apiclient import TINY, Api, settings_for

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]


def test_versions_no_op_rollback_and_delete(api: Api) -> None:
    _, h = api.tenant()
    c = api.client
    first = c.put("/v1/label-sets/support", json=TINY, headers=h)
    assert first.status_code == 201 and first.json()["version"] == 1 and first.json()["current"] is True
    same = c.put("/v1/label-sets/support", json={**TINY, "name": "support"}, headers=h)
    assert same.status_code == 200 and same.json()["version"] == 1
    changed = c.put("/v1/label-sets/support", json={**TINY, "threshold": 0.5}, headers=h)
    assert changed.status_code == 201 and changed.json()["version"] == 2
    assert c.get("/v1/label-sets/support", headers=h).json()["document"]["threshold"] == 0.5
    assert c.get("/v1/label-sets", headers=h).json() == [{"name": "support", "current_version": 2}]
    assert [v["version"] for v in c.get("/v1/label-sets/support/versions", headers=h).json()] == [1, 2]
    assert c.get("/v1/label-sets/support/versions/1", headers=h).json()["document"]["threshold"] == 0.2
    assert c.get("/v1/label-sets/support/versions/3", headers=h).status_code == 404
    rolled = c.post("/v1/label-sets/support/rollback", json={"version": 1}, headers=h)
    assert rolled.status_code == 200 and rolled.json()["version"] == 1
    assert c.get("/v1/label-sets/support", headers=h).json()["version"] == 1


def test_delete_keeps_the_history_of_jobs(api: Api) -> None:
    _, h = api.tenant_with_set("gone")
    job = api.client.post("/v1/classify", json={"label_set": "gone", "text": "charged twice"}, headers=h).json()
    assert api.client.delete("/v1/label-sets/gone", headers=h).status_code == 204
    assert api.client.get("/v1/label-sets/gone", headers=h).status_code == 404
    assert api.client.post("/v1/jobs", json={"label_set": "gone", "text": "x"}, headers=h).status_code == 404
    kept = api.client.get(f"/v1/jobs/{job['job_id']}", headers=h).json()
    assert kept["status"] == "done" and kept["label_set_version"] == 1 and kept["chosen"] == job["chosen"]


def labels(*names: str, **extra: Any) -> dict[str, Any]:
    return {"labels": [{"name": n, **extra} for n in names]}


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (labels("a", "a"), "body.labels.1.name", "duplicate label name"),
        (labels(""), "body.labels.0.name", "at least 1 character"),
        ({"labels": []}, "body.labels", "at least 1 item"),
        ({**labels("a"), "threshold": 1.5}, "body.threshold", "less than or equal to 1"),
        (labels("a", threshold=-1.01), "body.labels.0.threshold", "greater than or equal to -1"),
        (labels("a", description="d" * 2001), "body.labels.0.description", "at most 2000"),
        (labels("a", examples=["e" * 2001]), "body.labels.0.examples.0", "at most 2000"),
        ({**labels("a"), "name": "other"}, "body.name", "must equal the name in the path"),
        ({**labels("a"), "colour": 1}, "body.colour", "Extra inputs"),
    ],
)
def test_invalid_documents_are_422_with_the_field(api: Api, body: dict[str, Any], field: str, fragment: str) -> None:
    _, h = api.tenant()
    r = api.client.put("/v1/label-sets/x", json=body, headers=h)
    assert r.status_code == 422, r.text
    fields = r.json()["error"]["fields"]
    assert any(f["field"] == field and fragment in f["message"] for f in fields), fields
    assert api.client.get("/v1/label-sets/x", headers=h).status_code == 404


def test_the_label_count_limit_comes_from_settings(api: Api) -> None:
    with TestClient(create_app(settings_for(api.stack, max_labels=2))) as client:
        _, h = api.tenant()
        r = client.put("/v1/label-sets/x", json=labels("a", "b", "c"), headers=h)
        assert r.status_code == 422 and "3 labels; at most 2" in r.json()["error"]["message"]
        assert client.put("/v1/label-sets/x", json=labels("a", "b"), headers=h).status_code == 201
