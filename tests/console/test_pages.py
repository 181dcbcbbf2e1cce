"""The console's pages over HTTP (TestClient) on SQLite and PostgreSQL: sessions, CSRF, security headers,
escaping, tenant isolation, and the pages that need no worker (the worker's part is in the API and
browser tests)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from labelwise.api.app import create_app
from labelwise.labelset import parse_document
from labelwise.models import integrations, jobs, labelsets, tenants
from labelwise.models.tables import Delivery
from labelwise.settings import Settings

XSS = "<img src=x onerror=alert(1)>"
DOC = {
    "name": "support",
    "threshold": 0.3,
    "labels": [
        {"name": "billing", "description": "Invoices and charges.", "examples": ["charged twice"]},
        {"name": XSS, "description": f"{XSS} described"},
    ],
}


class Console:
    """A browser-like client: cookies, the sign-in form's token, the pages' CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client, self.csrf = client, ""

    @property
    def sessions(self) -> Any:
        return self.client.app.state.labelwise.sessions  # type: ignore[attr-defined]

    def tenant(self, name: str | None = None) -> tuple[int, str]:
        with self.sessions.begin() as s:
            tenant = tenants.create_tenant(s, name or f"t{uuid.uuid4().hex[:8]}")
            _, token = tenants.create_token(s, tenant_id=tenant.id)
            return tenant.id, token

    def sign_in(self, token: str) -> Any:
        page = self.client.get("/console/sign-in")
        login = re.search(r'name="login_csrf" value="([^"]+)"', page.text)[1]  # type: ignore[index]
        r = self.client.post("/console/sign-in", data={"token": token, "login_csrf": login}, follow_redirects=False)
        if r.status_code == 303:
            self.csrf = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/console/sets").text)[1]  # type: ignore[index]
        return r

    def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        return self.client.post(path, data={"csrf": self.csrf, **(data or {})}, follow_redirects=False, **kw)

    def apply(self, tenant_id: int, doc: dict[str, Any]) -> None:
        with self.sessions.begin() as s:
            labelsets.apply_document(s, tenant_id=tenant_id, doc=parse_document(doc), created_by="test")

    def version(self, tenant_id: int, name: str = "support") -> int:
        with self.sessions() as s:
            return labelsets.current_version(s, tenant_id=tenant_id, name=name).version


@pytest.fixture
def console(db_url: str, tmp_path: Path) -> Iterator[Console]:
    settings = Settings(home=tmp_path, database_url=db_url)  # type: ignore[call-arg]
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000") as client:
        yield Console(client)


@pytest.fixture
def signed_in(console: Console) -> tuple[Console, int]:
    tenant_id, token = console.tenant()
    console.apply(tenant_id, DOC)
    assert console.sign_in(token).status_code == 303
    return console, tenant_id


def test_pages_need_a_session_and_sign_in_sets_a_strict_httponly_cookie(console: Console) -> None:
    assert console.client.get("/console/sets", follow_redirects=False).headers["location"] == "/console/sign-in"
    _, token = console.tenant()
    r = console.sign_in(token)
    assert r.status_code == 303 and r.headers["location"] == "/console/sets" and token not in r.headers["location"]
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("lw_console="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert token not in cookie  # the cookie holds a session secret, not the token
    assert console.client.get("/console/sets").status_code == 200


def test_sign_in_refuses_a_bad_token_and_a_form_without_its_cookie(console: Console) -> None:
    r = console.sign_in("lw_not-a-token")
    assert r.status_code == 401 and "Unknown or revoked token." in r.text and "lw_not-a-token" not in r.text
    _, token = console.tenant()
    forged = console.client.post(
        "/console/sign-in", data={"token": token, "login_csrf": "guess"}, follow_redirects=False
    )
    assert forged.status_code == 403 and "lw_console=" not in forged.headers.get("set-cookie", "")


def test_revoking_the_token_or_signing_out_ends_the_session(console: Console) -> None:
    tenant_id, token = console.tenant()
    console.sign_in(token)
    cookie = console.client.cookies.get("lw_console")
    assert console.post("/console/sign-out").headers["location"] == "/console/sign-in"
    console.client.cookies.set("lw_console", cookie, path="/console")  # an old copy of the cookie
    assert console.client.get("/console/sets", follow_redirects=False).status_code == 303
    console.sign_in(token)
    with console.sessions.begin() as s:
        assert tenants.revoke_token(s, tenant_id=tenant_id, token_or_prefix=token) == 1
    assert console.client.get("/console/sets", follow_redirects=False).headers["location"] == "/console/sign-in"


def test_security_headers_and_packaged_docs(signed_in: tuple[Console, int]) -> None:
    console, _ = signed_in
    for path in ("/console/sets", "/console/sign-in", "/console/sets/support"):
        headers = console.client.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
        assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
    for path in ("/docs", "/redoc"):
        page = console.client.get(path)
        assert "unsafe-inline" not in page.headers["content-security-policy"].split("script-src")[1].split(";")[0]
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/") for a in assets), assets  # nothing from a CDN
        assert "<script>" not in page.text  # no inline script
        for asset in assets:
            assert console.client.get(asset).status_code == 200, asset


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/console/sets", {"name": "new-set"}),
        ("/console/sets/support/draft", {"labels.0.name": "x"}),
        ("/console/sets/support/save", {"labels.0.name": "x"}),
        ("/console/sets/support/delete", {}),
        ("/console/sets/support/rollback", {"version": "1"}),
        ("/console/sign-out", {}),
    ],
)
def test_state_changing_forms_need_the_csrf_token_and_this_origin(
    signed_in: tuple[Console, int], path: str, data: dict[str, str]
) -> None:
    console, tenant_id = signed_in
    for csrf, headers in (("", {}), ("wrong", {}), (console.csrf, {"Origin": "https://evil.example"})):
        r = console.client.post(path, data={"csrf": csrf, **data}, headers=headers, follow_redirects=False)
        assert r.status_code == 403, (path, csrf, headers)
    assert console.version(tenant_id) == 1 and console.client.get("/console/sets").status_code == 200


def test_what_a_tenant_wrote_is_escaped_everywhere(signed_in: tuple[Console, int]) -> None:
    console, tenant_id = signed_in
    with console.sessions.begin() as s:
        job = jobs.add_job(s, id=str(uuid.uuid4()), tenant_id=tenant_id, tenant_name="t", label_set_name="support",
                           idempotency_key=None, text=f"text {XSS}", metadata_=None, reply_to=None)  # fmt: skip
        result = {"label_set_version": 1, "labels": [{"name": XSS, "score": 0.5}], "chosen": [XSS], "abstained": False}
        jobs.mark_done(job, result=result, version_id=1)
    console.apply(tenant_id, {**DOC, "labels": [*DOC["labels"], {"name": "new"}]})
    for path in ("/console/sets/support", "/console/sets", "/console/sets/support/versions?a=1&b=2",
                 "/console/sets/support/messages"):  # fmt: skip
        page = console.client.get(path).text
        assert "<img" not in page, path
    page = console.client.get("/console/sets/support").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in console.client.get("/console/sets/support/messages").text


def test_another_tenants_objects_are_404_on_every_route(signed_in: tuple[Console, int]) -> None:
    console, tenant_id = signed_in
    other_id, _ = console.tenant()
    console.apply(other_id, {**DOC, "name": "theirs"})
    with console.sessions.begin() as s:
        job = jobs.add_job(s, id=str(uuid.uuid4()), tenant_id=other_id, tenant_name="o", label_set_name="theirs",
                           idempotency_key=None, text="their secret", metadata_=None, reply_to=None)  # fmt: skip
        jobs.mark_done(job, result={"labels": [], "chosen": [], "abstained": True}, version_id=1)
        hook, _ = integrations.upsert_integration(
            s, tenant_id=other_id, name="h", kind="webhook", config={}, secrets=""
        )
        dead = integrations.add_delivery(s, tenant_id=other_id, job_id=job.id, integration_id=hook.id, target=None)
        assert dead is not None
        dead.status = "dead"
        dead_id, job_id = dead.id, job.id
    gets = ["", "/versions", "/messages", "/evaluate", "/export.yaml", "/delete"]
    for path in gets:
        r = console.client.get(f"/console/sets/theirs{path}")
        assert r.status_code == 404 and "their secret" not in r.text, path
    posts = [
        ("/console/sets/theirs/draft", {}), ("/console/sets/theirs/save", {}), ("/console/sets/theirs/delete", {}),
        ("/console/sets/theirs/rollback", {"version": "1"}), ("/console/sets/theirs/discard", {}),
        (f"/console/jobs/{job_id}/feedback", {"label": "billing"}),
        (f"/console/jobs/{job_id}/to-draft", {"label": "billing"}),
        ("/console/deliveries/replay", {"id": dead_id}),
    ]  # fmt: skip
    for path, data in posts:
        assert console.post(path, data).status_code == 404, path
    assert console.post("/console/sets/theirs/preview", {}, headers={"HX-Request": "true"}).status_code == 404
    assert console.version(other_id, "theirs") == 1
    with console.sessions() as s:
        assert s.get(Delivery, dead_id).status == "dead"
    assert "theirs" not in console.client.get("/console/sets").text
    assert "their secret" not in console.client.get("/console/integrations").text


def test_save_makes_the_next_version_and_an_unchanged_form_makes_none(signed_in: tuple[Console, int]) -> None:
    console, tenant_id = signed_in
    form = _form_of(console)
    r = console.post("/console/sets/support/save", form)
    assert r.headers["location"] == "/console/sets/support?saved=unchanged&v=1" and console.version(tenant_id) == 1
    r = console.post("/console/sets/support/save", {**form, "labels.0.examples": "charged twice\nrefund please"})
    assert r.headers["location"] == "/console/sets/support?saved=saved&v=2" and console.version(tenant_id) == 2
    bad = console.post("/console/sets/support/save", {**form, "threshold": "2"})
    assert bad.status_code == 422 and console.version(tenant_id) == 2
    assert re.search(r'id="err-threshold"[^>]*><span>Input should be less than or equal to 1', bad.text)
    bad = console.post("/console/sets/support/save", {**form, "labels.1.name": "billing"})
    assert bad.status_code == 422 and console.version(tenant_id) == 2
    assert re.search(r'id="err-labels-1-name"[^>]*><span>duplicate label name', bad.text)
    assert 'id="labels-1-name" name="labels.1.name" value="billing"' in bad.text  # what was typed stays
    with console.sessions() as s:
        authors = [v.created_by for v in labelsets.list_versions(s, tenant_id=tenant_id, label_set_id=1)]
    assert authors[-1].startswith("console lw_")


def _form_of(console: Console) -> dict[str, str]:
    page = console.client.get("/console/sets/support").text
    fields = dict(
        re.findall(r'name="(threshold|fallback|margin|labels\.\d\.(?:name|threshold))" [^>]*value="([^"]*)"', page)
    )
    areas = dict(re.findall(r'name="(labels\.\d\.(?:description|examples))"[^>]*>([^<]*)</textarea>', page))
    return {k: v.replace("&lt;", "<").replace("&gt;", ">") for k, v in {**fields, **areas}.items()}


def test_new_set_import_export_discard_and_delete(signed_in: tuple[Console, int]) -> None:
    console, tenant_id = signed_in
    assert console.post("/console/sets", {"name": "support"}).status_code == 422  # exists
    assert console.post("/console/sets", {"name": "bad name!"}).status_code == 422
    assert console.post("/console/sets", {"name": "triage"}).headers["location"] == "/console/sets/triage?saved=created"
    assert "not saved yet" in console.client.get("/console/sets").text
    bad = console.post("/console/sets/triage/import", {"text": "labels: [{name: a}, {name: a}]"})
    assert bad.status_code == 422 and "duplicate label name" in bad.text
    yaml_doc = "name: other\nthreshold: 0.2\nlabels:\n  - name: urgent\n    examples: [server is down]\n"
    assert console.post("/console/sets/triage/import", files={"file": ("t.yaml", yaml_doc.encode())}).status_code == 303
    exported = console.client.get("/console/sets/triage/export.yaml?which=draft").text
    expected = "name: triage\nmulti_label: false\nthreshold: 0.2\nlabels:\n- name: urgent\n"
    assert exported == expected + "  description: ''\n  examples:\n  - server is down\n"
    assert console.post("/console/sets/triage/discard").headers["location"] == "/console/sets"
    assert console.client.get("/console/sets/triage").status_code == 404
    assert console.client.get("/console/sets/support/delete").status_code == 200
    assert console.post("/console/sets/support/delete").headers["location"] == "/console/sets"
    with console.sessions() as s:
        assert labelsets.find_label_set(s, tenant_id=tenant_id, name="support") is None


def test_versions_diff_and_rollback(signed_in: tuple[Console, int]) -> None:
    console, tenant_id = signed_in
    console.apply(tenant_id, {**DOC, "threshold": 0.2})
    page = console.client.get("/console/sets/support/versions").text
    assert "<del>0.3</del> → <ins>0.2</ins>" in page and "by test" not in page and "test" in page
    assert console.post("/console/sets/support/rollback", {"version": "1"}).status_code == 303
    assert console.version(tenant_id) == 1
    assert console.post("/console/sets/support/rollback", {"version": "9"}).status_code == 404


def test_integrations_show_dead_deliveries_and_replay_them(signed_in: tuple[Console, int]) -> None:
    console, tenant_id = signed_in
    with console.sessions.begin() as s:
        job = jobs.add_job(s, id=str(uuid.uuid4()), tenant_id=tenant_id, tenant_name="t", label_set_name="support",
                           idempotency_key=None, text="hi", metadata_=None, reply_to=None)  # fmt: skip
        hook, _ = integrations.upsert_integration(
            s, tenant_id=tenant_id, name="hook", kind="webhook", config={}, secrets=""
        )
        row = integrations.add_delivery(s, tenant_id=tenant_id, job_id=job.id, integration_id=hook.id, target=None)
        assert row is not None
        row.status, row.attempts, row.last_error = "dead", 8, "HTTP 500 from the receiver"
        delivery_id = row.id
    page = console.client.get("/console/integrations").text
    assert "dead 1" in page and "HTTP 500 from the receiver" in page and delivery_id in page
    assert (
        console.post("/console/deliveries/replay", {"id": delivery_id}).headers["location"] == "/console/integrations"
    )
    with console.sessions() as s:
        assert s.get(Delivery, delivery_id).status == "pending"
    assert console.post("/console/deliveries/replay", {"id": delivery_id}).status_code == 409  # not dead any more


def _done_job(console: Console, tenant_id: int, text: str, labels: list[tuple[str, float]], chosen: list[str]) -> str:
    with console.sessions.begin() as s:
        job = jobs.add_job(s, id=str(uuid.uuid4()), tenant_id=tenant_id, tenant_name="t", label_set_name="support",
                           idempotency_key=None, text=text, metadata_=None, reply_to=None)  # fmt: skip
        ranked = [{"name": n, "score": v} for n, v in labels]
        result = {"label_set_version": 1, "labels": ranked, "chosen": chosen, "abstained": not chosen}
        jobs.mark_done(job, result=result, version_id=1)
        return job.id


def test_recent_messages_filter_and_become_examples_of_the_draft(signed_in: tuple[Console, int]) -> None:
    console, tenant_id = signed_in
    sure = _done_job(console, tenant_id, "charged twice again", [("billing", 0.8), (XSS, 0.2)], ["billing"])
    close = _done_job(console, tenant_id, "money or markup?", [(XSS, 0.51), ("billing", 0.50)], [XSS])
    unsure = _done_job(console, tenant_id, "what is this", [("billing", 0.1), (XSS, 0.08)], [])

    def shown(query: str) -> set[str]:
        page = console.client.get(f"/console/sets/support/messages{query}").text
        return {j for j in (sure, close, unsure) if f'id="job-{j}"' in page}

    assert shown("") == {sure, close, unsure}
    assert shown("?label=billing") == {sure, unsure}  # chosen, or ranked first when abstaining
    assert shown("?abstained=1") == {unsure} and shown("?low_margin=1") == {close, unsure}
    r = console.post(f"/console/jobs/{close}/to-draft", {"label": "billing"})
    assert r.headers["location"] == "/console/sets/support?saved=example"
    editor = console.client.get("/console/sets/support").text
    assert "You are editing a draft" in editor and "charged twice\nmoney or markup?</textarea>" in editor
    assert console.version(tenant_id) == 1  # nothing saved yet
    assert console.post(f"/console/jobs/{close}/to-draft", {"label": "nope"}).status_code == 422
