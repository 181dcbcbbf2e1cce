"""POST /v1/classify waits without holding a thread, and each tenant may hold only so many waits."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labelwise.api.app import create_app
from labelwise.models import tenants
from labelwise.models.db import upgrade
from labelwise.settings import Settings
from tests.apiclient import TINY

WAIT_S = 3.0


def make_client(tmp_path: Path, **over: Any) -> TestClient:
    """No worker runs: every classify call waits its full ``sync_timeout_s`` and answers 202."""
    settings = Settings(home=tmp_path, sync_timeout_s=WAIT_S, **over)
    settings.ensure_home()
    upgrade(settings.resolved_database_url())
    return TestClient(create_app(settings))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, sync_max_waits=60) as c:
        yield c


def new_tenant(client: TestClient) -> dict[str, str]:
    with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
        tenant = tenants.create_tenant(s, f"t{uuid.uuid4().hex[:8]}")
        _, token = tenants.create_token(s, tenant_id=tenant.id)
    h = {"Authorization": f"Bearer {token}"}
    assert client.put("/v1/label-sets/tiny", json=TINY, headers=h).status_code == 201
    return h


def start_waits(client: TestClient, h: dict[str, str], n: int) -> tuple[list[threading.Thread], list[int]]:
    codes: list[int] = []

    def call(i: int) -> None:
        codes.append(
            client.post("/v1/classify", json={"label_set": "tiny", "text": f"hello {i}"}, headers=h).status_code
        )

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, codes


def test_many_waiting_classify_calls_do_not_slow_another_tenants_get(client: TestClient) -> None:
    """45 waits of tenant A (more than the 40 threads of the pool): tenant B's GETs stay fast."""
    a, b = new_tenant(client), new_tenant(client)
    threads, codes = start_waits(client, a, 45)
    time.sleep(1.0)  # all 45 are waiting now
    took = []
    for _ in range(5):
        started = time.monotonic()
        assert client.get("/v1/label-sets", headers=b).status_code == 200
        took.append(time.monotonic() - started)
    for t in threads:
        t.join()
    assert codes == [202] * 45
    assert max(took) < 0.5, took  # a held thread per wait made this about WAIT_S


def test_one_tenant_past_its_cap_gets_429_and_another_tenant_does_not(tmp_path: Path) -> None:
    with make_client(tmp_path, sync_max_waits=2) as client:
        a, b = new_tenant(client), new_tenant(client)
        threads, codes = start_waits(client, a, 2)
        time.sleep(0.5)
        over = client.post("/v1/classify", json={"label_set": "tiny", "text": "one more"}, headers=a)
        assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
        assert int(over.headers["Retry-After"]) >= 1
        other, other_codes = start_waits(client, b, 1)
        for t in threads + other:
            t.join()
        assert codes == [202, 202] and other_codes == [202]
        assert len(client.get("/v1/jobs", headers=a).json()["jobs"]) == 2  # the refused call made no job


def test_waiting_calls_share_one_poll_of_their_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """JobPolls: one query asks about every job waited on; a poll soon after reuses its answer."""
    from labelwise import pipeline
    from labelwise.api.waiting import JobPolls

    asked: list[list[str]] = []
    done = {"job-b"}

    def jobs_finished(_: object, ids: list[str]) -> set[str]:
        asked.append(ids)
        return done & set(ids)

    monkeypatch.setattr(pipeline, "jobs_finished", jobs_finished)
    polls = JobPolls(sessions=None)
    with polls.watching("job-a"), polls.watching("job-b"):
        assert polls.finished("job-a", 0.2) is False
        assert polls.finished("job-b", 0.2) is True  # the same query's answer
        assert [sorted(ids) for ids in asked] == [["job-a", "job-b"]]
        time.sleep(0.05)
        assert polls.finished("job-b", 0.01) is True  # wants a fresher answer than 50 ms: asks again
        assert len(asked) == 2
    assert polls.finished("job-c", 1.0) is False  # not in the last query: asked alone
    assert asked[-1] == ["job-c"]


def test_many_waiting_calls_poll_the_database_about_as_often_as_one(tmp_path: Path) -> None:
    """Eight calls waiting past their first second: polled each on its own every 0.2 s they took about 40
    database sessions a second; sharing one poll, about 5."""
    from sqlalchemy import event

    with make_client(tmp_path, sync_max_waits=60) as client:
        h = new_tenant(client)
        engine = client.app.state.labelwise.sessions.kw["bind"]  # type: ignore[attr-defined]
        checkouts: list[float] = []
        event.listen(engine, "checkout", lambda *_: checkouts.append(time.monotonic()))
        threads, codes = start_waits(client, h, 8)
        time.sleep(1.0)  # every wait polls at its slowest now
        started = time.monotonic()
        time.sleep(1.0)
        in_that_second = [t for t in checkouts if started <= t < started + 1.0]
        for t in threads:
            t.join()
        assert codes == [202] * 8
        assert len(in_that_second) <= 12, len(in_that_second)
