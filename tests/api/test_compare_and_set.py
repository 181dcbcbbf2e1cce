"""Label-set writes are compare-and-set on the current version: concurrent feedback and admin edits
never overwrite each other; a PUT whose If-Match names a version that is no longer current is a 409."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from labelwise.api.app import create_app
from labelwise.models import tenants
from labelwise.models.tables import Job
from labelwise.settings import Settings
from tests.apiclient import TINY


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(home=tmp_path, database_url=db_url)), raise_server_exceptions=False) as c:
        yield c


def new_tenant(client: TestClient) -> dict[str, str]:
    with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
        tenant = tenants.create_tenant(s, f"t{uuid.uuid4().hex[:8]}")
        _, token = tenants.create_token(s, tenant_id=tenant.id)
    h = {"Authorization": f"Bearer {token}"}
    assert client.put("/v1/label-sets/tiny", json=TINY, headers=h).status_code == 201
    return h


def done_jobs(client: TestClient, h: dict[str, str], texts: list[str]) -> list[str]:
    """Jobs marked done directly (no worker needed: feedback only needs a done job and its text)."""
    ids = [client.post("/v1/jobs", json={"label_set": "tiny", "text": t}, headers=h).json()["job_id"] for t in texts]
    with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
        s.execute(update(Job).where(Job.id.in_(ids)).values(status="done"))
    return ids


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on threads released at the same moment; their results in order."""
    barrier, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def examples(client: TestClient, h: dict[str, str], label: str = "billing") -> list[str]:
    doc = client.get("/v1/label-sets/tiny", headers=h).json()["document"]
    return next(x["examples"] for x in doc["labels"] if x["name"] == label)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_feedback_loses_no_example(client: TestClient) -> None:
    """Eight corrections at once: each becomes a version, and the last version holds all eight texts."""
    h = new_tenant(client)
    texts = [f"refund request number {i} for my card" for i in range(8)]
    ids = done_jobs(client, h, texts)
    answers = together(
        [lambda j=j: client.post(f"/v1/jobs/{j}/feedback", json={"label": "billing"}, headers=h) for j in ids]
    )
    assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
    assert sorted(r.json()["label_set_version"] for r in answers) == list(range(2, 10))
    assert set(texts) <= set(examples(client, h))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_feedback_beside_an_admin_edit_keeps_the_admins_version(client: TestClient) -> None:
    """The admin's new description and the feedback example both survive, whichever commits first."""
    h = new_tenant(client)
    [job] = done_jobs(client, h, ["charged twice on my invoice"])
    edited = {**TINY, "labels": [{**TINY["labels"][0], "description": "Money matters."}, *TINY["labels"][1:]]}
    put, fb = together(
        [
            lambda: client.put("/v1/label-sets/tiny", json=edited, headers={**h, "If-Match": '"1"'}),
            lambda: client.post(f"/v1/jobs/{job}/feedback", json={"label": "billing"}, headers=h),
        ]
    )
    assert fb.status_code == 200 and put.status_code in (201, 409), (put.text, fb.text)
    doc = client.get("/v1/label-sets/tiny", headers=h).json()["document"]
    assert "charged twice on my invoice" in examples(client, h)
    if put.status_code == 201:  # the admin's edit came first: the feedback was written on top of it
        assert doc["labels"][0]["description"] == "Money matters."
    else:  # the feedback came first: the admin, editing version 1, is told so and nothing is lost
        assert (
            put.json()["error"]["code"] == "version_conflict"
            and "current version is 2" in put.json()["error"]["message"]
        )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_admins_editing_one_version_one_wins_one_409(client: TestClient) -> None:
    h = new_tenant(client)
    etag = client.get("/v1/label-sets/tiny", headers=h).headers["ETag"]
    docs = [{**TINY, "threshold": 0.11}, {**TINY, "threshold": 0.12}]
    answers = together(
        [lambda d=d: client.put("/v1/label-sets/tiny", json=d, headers={**h, "If-Match": etag}) for d in docs]
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [201, 409], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 201)
    assert winner.headers["ETag"] == '"2"'
    assert (
        client.get("/v1/label-sets/tiny", headers=h).json()["document"]["threshold"]
        == winner.json()["document"]["threshold"]
    )


def test_if_match_forms(client: TestClient) -> None:
    h = new_tenant(client)
    assert client.get("/v1/label-sets/tiny", headers=h).headers["ETag"] == '"1"'
    stale = client.put("/v1/label-sets/tiny", json={**TINY, "threshold": 0.3}, headers={**h, "If-Match": '"7"'})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
    assert (
        client.put(
            "/v1/label-sets/tiny", json={**TINY, "threshold": 0.3}, headers={**h, "If-Match": 'W/"1"'}
        ).status_code
        == 201
    )
    assert client.put("/v1/label-sets/new", json=TINY, headers={**h, "If-Match": "*"}).status_code == 409
    assert client.put("/v1/label-sets/tiny", json=TINY, headers={**h, "If-Match": "*"}).status_code == 201
    bad = client.put("/v1/label-sets/tiny", json=TINY, headers={**h, "If-Match": "abc"})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "If-Match"
    assert client.get("/v1/label-sets/tiny/versions", headers=h).json()[-1]["version"] == 3
