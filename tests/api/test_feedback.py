"""Corrections: POST /v1/jobs/{id}/feedback makes the job's text an example in the next version."""

from __future__ import annotations

import pytest

from tests.apiclient import Api

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]


def score_of(view: dict, label: str) -> float:  # type: ignore[type-arg]
    return next(x["score"] for x in view["labels"] if x["name"] == label)


def test_a_correction_becomes_an_example_and_the_next_message_uses_it(api: Api) -> None:
    _, h = api.tenant_with_set()
    text = "Your app keeps charging my card although the export is broken"
    job = api.client.post("/v1/classify", json={"label_set": "tiny", "text": text}, headers=h).json()
    assert job["status"] == "done"
    r = api.client.post(f"/v1/jobs/{job['job_id']}/feedback", json={"label": "bug-report"}, headers=h)
    assert r.status_code == 200 and r.json()["label_set_version"] == 2 and r.json()["new_version"] is True
    again = api.client.post(f"/v1/jobs/{job['job_id']}/feedback", json={"label": "bug-report"}, headers=h).json()
    assert again["label_set_version"] == 2 and again["new_version"] is False
    doc = api.client.get("/v1/label-sets/tiny", headers=h).json()["document"]
    assert text in next(x for x in doc["labels"] if x["name"] == "bug-report")["examples"]
    assert api.client.get(f"/v1/jobs/{job['job_id']}", headers=h).json()["feedback"] == "bug-report"
    later = api.client.post("/v1/classify", json={"label_set": "tiny", "text": text}, headers=h).json()
    assert later["label_set_version"] == 2 and later["chosen"] == ["bug-report"]
    assert score_of(later, "bug-report") > score_of(job, "bug-report")


def test_feedback_needs_a_done_job_and_a_known_label(api: Api) -> None:
    _, h = api.tenant_with_set()
    job = api.client.post("/v1/classify", json={"label_set": "tiny", "text": "charged twice"}, headers=h).json()
    bad = api.client.post(f"/v1/jobs/{job['job_id']}/feedback", json={"label": "nope"}, headers=h)
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "label"
    assert api.client.post("/v1/jobs/none/feedback", json={"label": "billing"}, headers=h).status_code == 404
    assert api.client.get("/v1/label-sets/tiny", headers=h).json()["version"] == 1
