"""/v1/jobs and /v1/classify through a real worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from labelwise.models import tenants
from tests.apiclient import TINY, Api

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]


def test_a_posted_job_is_classified_by_the_worker(api: Api) -> None:
    _, h = api.tenant_with_set()
    r = api.client.post(
        "/v1/jobs", json={"label_set": "tiny", "text": "I was charged twice", "metadata": {"n": 1}}, headers=h
    )
    assert r.status_code == 202 and r.headers["Location"] == f"/v1/jobs/{r.json()['job_id']}"
    assert r.json()["status"] == "queued"
    done = api.wait(r.json()["job_id"], h)
    assert done["status"] == "done" and done["chosen"] == ["billing"] and done["metadata"] == {"n": 1}


def test_idempotency_key_returns_the_same_job_and_refuses_another_body(api: Api) -> None:
    _, h = api.tenant_with_set()
    hk = {**h, "Idempotency-Key": "order-1"}
    first = api.client.post("/v1/jobs", json={"label_set": "tiny", "text": "Where is my invoice?"}, headers=hk)
    again = api.client.post("/v1/jobs", json={"label_set": "tiny", "text": "Where is my invoice?"}, headers=hk)
    other = api.client.post("/v1/jobs", json={"label_set": "tiny", "text": "Something else"}, headers=hk)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["job_id"] == first.json()["job_id"]
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"


def test_sync_classify_answers_with_the_result_and_follows_label_set_edits(api: Api) -> None:
    _, h = api.tenant_with_set()
    text = {"label_set": "tiny", "text": "My parcel never arrived, where is the delivery?"}
    before = api.client.post("/v1/classify", json=text, headers=h)
    assert before.status_code == 200 and before.json()["label_set_version"] == 1
    assert "shipping" not in before.json()["chosen"]
    edited = {**TINY, "labels": [*TINY["labels"], {"name": "shipping", "description": "Deliveries and parcels."}]}
    assert api.client.put("/v1/label-sets/tiny", json=edited, headers=h).json()["version"] == 2
    after = api.client.post("/v1/classify", json=text, headers=h).json()
    assert after["status"] == "done" and after["label_set_version"] == 2 and after["chosen"] == ["shipping"]


def test_list_jobs_pages_with_a_cursor_and_filters(api: Api) -> None:
    _, h = api.tenant_with_set()
    ids = {
        api.client.post("/v1/jobs", json={"label_set": "tiny", "text": f"invoice {i}"}, headers=h).json()["job_id"]
        for i in range(5)
    }
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/jobs", params=params, headers=h).json()
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    for job_id in ids:
        api.wait(job_id, h)
    assert len(api.client.get("/v1/jobs", params={"status": "done"}, headers=h).json()["jobs"]) == 5
    assert api.client.get("/v1/jobs", params={"status": "failed"}, headers=h).json()["jobs"] == []
    bad = api.client.get("/v1/jobs", params={"cursor": "garbage"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"label_set": "nope", "text": "hi"}, 404, "not_found", None),
        ({"label_set": "tiny", "text": "x" * 50_001}, 422, "invalid_input", "text"),
        ({"label_set": "tiny", "text": "   "}, 422, "invalid_input", "text"),
        ({"label_set": "tiny", "text": "hi", "colour": "red"}, 422, "validation_error", "body.colour"),
        ({"label_set": "tiny"}, 422, "validation_error", "body.text"),
        ({"label_set": "tiny", "text": "a\u0000b"}, 422, "invalid_input", None),
    ],
)
def test_bad_job_requests_get_json_errors(api: Api, body: dict, status: int, code: str, field: str | None) -> None:  # type: ignore[type-arg]
    _, h = api.tenant_with_set()
    r = api.client.post("/v1/jobs", json=body, headers=h)
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text
    if field:
        assert field in [f["field"] for f in r.json()["error"]["fields"]]
    assert api.client.get("/v1/jobs", headers=h).json()["jobs"] == []


def test_tokens_missing_malformed_unknown_or_revoked_are_401(api: Api) -> None:
    tenant, h = api.tenant_with_set()
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer lw_nope"}):
        r = api.client.get("/v1/jobs", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["WWW-Authenticate"] == "Bearer"
    assert api.client.get("/v1/jobs", headers=h).status_code == 200
    sessions = api.client.app.state.labelwise.sessions  # type: ignore[attr-defined]
    with sessions.begin() as s:
        tenant_id = tenants.get_tenant(s, tenant).id
        token = h["Authorization"].removeprefix("Bearer ")
        assert tenants.revoke_token(s, tenant_id=tenant_id, token_or_prefix=token) == 1
    api.client.app.state.labelwise.tokens.clear()  # type: ignore[attr-defined]  # else within 5 s (test_token_cache)
    assert api.client.get("/v1/jobs", headers=h).status_code == 401
