"""One tenant's token never sees or changes another tenant's data: 404, never 403 or a leak."""

from __future__ import annotations

import pytest

from tests.apiclient import TINY, Api

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]

# (method, path, body) with {job} and {set} standing for tenant A's job id and label-set name.
ROUTES = [
    ("GET", "/v1/jobs/{job}", None),
    ("POST", "/v1/jobs", {"label_set": "{set}", "text": "charged twice"}),
    ("POST", "/v1/classify", {"label_set": "{set}", "text": "charged twice"}),
    ("GET", "/v1/label-sets/{set}", None),
    ("DELETE", "/v1/label-sets/{set}", None),
    ("GET", "/v1/label-sets/{set}/versions", None),
    ("GET", "/v1/label-sets/{set}/versions/1", None),
    ("POST", "/v1/label-sets/{set}/rollback", {"version": 1}),
]


@pytest.fixture(scope="module")
def two_tenants(api: Api) -> tuple[dict[str, str], dict[str, str], str]:
    _, a = api.tenant_with_set("secret-set")
    _, b = api.tenant()
    job = api.client.post("/v1/classify", json={"label_set": "secret-set", "text": "charged twice"}, headers=a).json()
    return a, b, job["job_id"]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_other_tenants_objects_are_404(api: Api, two_tenants, method: str, path: str, body: dict | None) -> None:  # type: ignore[no-untyped-def,type-arg]
    a, b, job_id = two_tenants
    fill = {"job": job_id, "set": "secret-set"}
    url = path.format(**fill)
    payload = {k: (v.format(**fill) if isinstance(v, str) else v) for k, v in (body or {}).items()} or None
    r = api.client.request(method, url, json=payload, headers=b)
    assert r.status_code == 404, (method, url, r.status_code, r.text)
    assert r.json()["error"]["code"] == "not_found" and "secret" not in r.json()["error"]["message"].replace(
        "secret-set", ""
    )
    # tenant A still has everything, untouched
    assert api.client.get(f"/v1/jobs/{job_id}", headers=a).status_code == 200
    assert api.client.get("/v1/label-sets/secret-set", headers=a).json()["version"] == 1


def test_lists_show_only_the_callers_objects(api: Api, two_tenants) -> None:  # type: ignore[no-untyped-def]
    a, b, job_id = two_tenants
    assert api.client.get("/v1/jobs", headers=b).json()["jobs"] == []
    assert api.client.get("/v1/label-sets", headers=b).json() == []
    assert api.client.put("/v1/label-sets/secret-set", json=TINY, headers=b).json()["version"] == 1  # B's own set
    assert api.client.get("/v1/label-sets/secret-set", headers=a).json()["version"] == 1
    assert job_id in [j["job_id"] for j in api.client.get("/v1/jobs", headers=a).json()["jobs"]]
