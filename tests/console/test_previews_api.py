"""POST /v1/preview and /v1/evaluations through a real worker: a draft beside the current version."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labelwise.api.app import create_app
from tests.apiclient import TINY, Api, settings_for

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]

DRAFT: dict[str, Any] = {
    **TINY,
    "labels": [
        *TINY["labels"],
        {"name": "shipping", "description": "Parcels, delivery dates, couriers and tracking numbers."},
    ],
}


def test_preview_scores_the_draft_beside_the_current_version(api: Api) -> None:
    """The draft's new label wins for the draft; the current version (without it) picks another one."""
    _, headers = api.tenant_with_set("support")
    body = {"label_set": "support", "document": DRAFT, "texts": ["Where is my parcel? The courier tracking is stuck."]}
    r = api.client.post("/v1/preview", json=body, headers=headers)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "done" and out["current_version"] == 1 and out["model"]
    draft, current = out["draft"][0], out["current"][0]
    assert draft["chosen"] == ["shipping"] and not draft["abstained"]
    assert [x["name"] for x in draft["labels"]][0] == "shipping" and len(draft["labels"]) == 4  # every label
    assert "shipping" not in [x["name"] for x in current["labels"]] and len(current["labels"]) == 3
    assert api.client.get(f"/v1/previews/{out['preview_id']}", headers=headers).json() == out
    assert api.client.get("/v1/jobs", headers=headers).json()["jobs"] == []  # a preview is no job


def test_preview_of_another_tenants_set_is_404_and_its_preview_too(api: Api) -> None:
    _, a = api.tenant_with_set("secret-set")
    _, b = api.tenant()
    r = api.client.post("/v1/preview", json={"label_set": "secret-set", "texts": ["hello"]}, headers=b)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    mine = api.client.post("/v1/preview", json={"label_set": "secret-set", "texts": ["hello"]}, headers=a).json()
    assert api.client.get(f"/v1/previews/{mine['preview_id']}", headers=b).status_code == 404


def test_preview_names_the_bad_field_of_the_draft(api: Api) -> None:
    _, headers = api.tenant_with_set("support")
    bad = {**DRAFT, "labels": [{"name": "a"}, {"name": "a"}]}
    r = api.client.post("/v1/preview", json={"document": bad, "texts": ["x"]}, headers=headers)
    assert r.status_code == 422
    assert r.json()["error"]["fields"] == [
        {"field": "body.document.labels.1.name", "message": "duplicate label name 'a'"}
    ]


def test_waits_are_capped_per_tenant_and_answer_202_when_the_worker_is_slow(api: Api) -> None:
    """No worker consumes this queue: the first preview waits out its timeout (202), a second one
    of the same tenant meanwhile is refused (429), another tenant's is not."""
    settings = settings_for(api.stack, queue=f"{api.stack.queue}-nobody", preview_timeout_s=2.0, preview_max_waits=1)
    _, headers = api.tenant_with_set("support")
    _, other = api.tenant_with_set("support")
    body = {"label_set": "support", "texts": ["hello"]}
    with TestClient(create_app(settings)) as client:
        first: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: first.update(r=client.post("/v1/preview", json=body, headers=headers)))
        waiter.start()
        time.sleep(0.5)
        second = client.post("/v1/preview", json=body, headers=headers)
        third = client.post("/v1/preview", json=body, headers=other)
        waiter.join()
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    assert first["r"].status_code == 202 and first["r"].json()["status"] == "queued"
    assert first["r"].headers["Location"] == f"/v1/previews/{first['r'].json()['preview_id']}"
    assert third.status_code == 202  # another tenant waits too (and times out: nobody consumes)


def test_evaluation_reports_draft_and_current_side_by_side(api: Api) -> None:
    _, headers = api.tenant_with_set("support")
    rows = [
        {"text": "My parcel never arrived and tracking is stuck", "label": "shipping"},
        {"text": "The courier lost my delivery", "label": "shipping"},
        {"text": "I was charged twice for one order", "label": "billing"},
        {"text": "I cannot log in, my password reset fails", "label": "account-access"},
        {"text": "The app crashes when I open settings", "label": "bug-report"},
    ]
    r = api.client.post(
        "/v1/evaluations", json={"label_set": "support", "document": DRAFT, "rows": rows}, headers=headers
    )
    assert r.status_code == 202, r.text
    location = r.headers["Location"]
    deadline = time.monotonic() + 90
    while (out := api.client.get(location, headers=headers).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert out["status"] == "done" and out["done"] == out["total"] == 10, out
    assert out["draft"]["accuracy"] == 1.0 and out["current"]["accuracy"] == pytest.approx(0.6)
    assert out["draft"]["confusion"]["counts"][3] == [0, 0, 0, 2]  # shipping rows: shipping
    assert {p["label"] for p in out["draft"]["per_label"]} == {"billing", "account-access", "bug-report", "shipping"}
    assert out["current_version"] == 1 and out["draft"]["sweep"]
    png = api.client.get(f"{location}/figures/draft.png", headers=headers)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    _, other = api.tenant()
    assert api.client.get(location, headers=other).status_code == 404
    assert api.client.get(f"{location}/figures/draft.png", headers=other).status_code == 404
