"""Privacy mode with a real worker: a tenant's message texts reach no table, results and feedback work."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select

from labelwise.models.db import make_engine, make_session_factory
from labelwise.models.tables import Base
from tests.apiclient import Api

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]


def tables_containing(database_url: str, needle: str) -> list[str]:
    """Every table of the schema (from the metadata) with a row in which ``needle`` appears."""
    engine = make_engine(database_url)
    found = []
    try:
        with make_session_factory(engine)() as s:
            for table in Base.metadata.sorted_tables:
                for row in s.execute(select(table)):
                    if needle in json.dumps(dict(row._mapping), default=str):
                        found.append(table.name)
                        break
    finally:
        engine.dispose()
    return found


def test_privacy_mode_keeps_every_text_out_of_the_database(api: Api) -> None:
    tenant, h = api.tenant_with_set()
    api.stack.cli("tenant", "data", tenant, "--privacy")
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    text = f"I was charged twice for my invoice {secret}"

    queued = api.client.post("/v1/jobs", json={"label_set": "tiny", "text": text + " queued"}, headers=h).json()
    sync = api.client.post("/v1/classify", json={"label_set": "tiny", "text": text}, headers=h).json()
    sent = api.stack.send({"tenant": tenant, "label_set": "tiny", "text": text + " via celery"})
    bad = api.stack.send({"tenant": tenant, "label_set": "tiny", "text": text, "metadata": "not an object"})
    results = [api.wait(queued["job_id"], h), sync, api.stack.wait_job(sent), api.stack.wait_job(bad)]

    assert [r["status"] for r in results] == ["done", "done", "done", "failed"]
    assert all(r["chosen"] == ["billing"] for r in results[:3])
    assert tables_containing(api.stack.database_url, secret) == []

    job = sync["job_id"]
    r = api.client.post(f"/v1/jobs/{job}/feedback", json={"label": "billing"}, headers=h)
    assert r.status_code == 409 and "send the text" in r.json()["error"]["message"]
    r = api.client.post(
        f"/v1/jobs/{job}/feedback", json={"label": "billing", "text": "double charge on my card"}, headers=h
    )
    assert r.status_code == 200 and r.json()["new_version"] is True

    api.stack.cli("tenant", "data", tenant, "--no-privacy")
    kept = api.client.post("/v1/classify", json={"label_set": "tiny", "text": text + " kept"}, headers=h).json()
    assert kept["status"] == "done" and tables_containing(api.stack.database_url, secret) == ["jobs"]
