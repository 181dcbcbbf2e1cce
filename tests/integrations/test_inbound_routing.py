"""Inbound hooks under hostile input: each event goes to exactly one integration, checked with that
integration's secret only; unauthenticated work is bounded; malformed input is a 4xx JSON error.

The API runs in-process on an embedded (SQLite) stack of its own; no worker is needed (jobs are only
recorded and published)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from labelwise.api.app import create_app
from labelwise.models import tenants
from labelwise.models.db import upgrade
from labelwise.models.tables import Job
from labelwise.settings import Settings
from tests.apiclient import TINY

SHARED_SECRET = "one-app-signing-secret"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path, secret_key=Fernet.generate_key().decode())
    settings.ensure_home()
    upgrade(settings.resolved_database_url())
    with TestClient(create_app(settings)) as c:
        yield c


def new_tenant(client: TestClient) -> dict[str, str]:
    with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
        tenant = tenants.create_tenant(s, f"t{uuid.uuid4().hex[:8]}")
        _, token = tenants.create_token(s, tenant_id=tenant.id)
    h = {"Authorization": f"Bearer {token}"}
    assert client.put("/v1/label-sets/tiny", json=TINY, headers=h).status_code == 201
    return h


def slack(client: TestClient, h: dict[str, str], *, name: str = "slack", secret: str = SHARED_SECRET, **settings: Any):  # type: ignore[no-untyped-def]
    return client.put(
        f"/v1/integrations/{name}",
        json={
            "kind": "slack",
            "label_set": "tiny",
            "settings": {"base_url": "http://127.0.0.1:9/api", **settings},
            "secrets": {"bot_token": "xoxb-x", "signing_secret": secret},
        },
        headers=h,
    )


def event(text: str, *, team: str, app: str = "A1", event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "type": "event_callback",
            "team_id": team,
            "api_app_id": app,
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
            "event": {"type": "message", "channel": "C1", "user": "U1", "text": text, "ts": "1700000000.000100"},
        }
    ).encode()


def signed(body: bytes, secret: str = SHARED_SECRET, stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}", "Content-Type": "application/json"}


def job_count(client: TestClient, h: dict[str, str]) -> int:
    return len(client.get("/v1/jobs", headers=h).json()["jobs"])


def test_two_tenants_sharing_one_signing_secret_each_get_only_their_own_events(client: TestClient) -> None:
    """Routing by api_app_id + team_id: 0 cross-tenant jobs, although one secret verifies both."""
    a, b = new_tenant(client), new_tenant(client)
    assert slack(client, a, api_app_id="A1", team_id="TA").status_code == 201
    assert slack(client, b, api_app_id="A1", team_id="TB").status_code == 201
    for i in range(3):
        for team in ("TA", "TB"):
            body = event(f"{team} message {i}", team=team)
            r = client.post("/hooks/slack/events", content=body, headers=signed(body))
            assert r.status_code == 200 and r.json()["ok"], r.text
    assert job_count(client, a) == 3 and job_count(client, b) == 3
    for h, team in ((a, "TA"), (b, "TB")):
        ids = [j["job_id"] for j in client.get("/v1/jobs", headers=h).json()["jobs"]]
        with client.app.state.labelwise.sessions() as s:  # type: ignore[attr-defined]
            stored = [s.get(Job, i).text for i in ids]
        assert len(stored) == 3 and all(t.startswith(team) for t in stored), stored


def test_an_event_of_an_unknown_workspace_is_404_and_lands_nowhere(client: TestClient) -> None:
    a = new_tenant(client)
    slack(client, a, api_app_id="A1", team_id="TA")
    body = event("hello", team="TZ")
    r = client.post("/hooks/slack/events", content=body, headers=signed(body))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert job_count(client, a) == 0


def test_the_integration_query_form_refuses_another_workspaces_event(client: TestClient) -> None:
    """?integration=A with a correctly signed event of workspace B (same app secret): refused, no job."""
    a, b = new_tenant(client), new_tenant(client)
    url_a = slack(client, a, api_app_id="A1", team_id="TA").json()["hook_path"]
    slack(client, b, api_app_id="A1", team_id="TB")
    body = event("for B", team="TB")
    assert client.post(url_a, content=body, headers=signed(body)).status_code == 404
    own = event("for A", team="TA")
    assert client.post(url_a, content=own, headers=signed(own)).status_code == 200
    assert job_count(client, a) == 1 and job_count(client, b) == 0


def test_one_app_and_workspace_pair_belongs_to_one_integration(client: TestClient) -> None:
    a, b = new_tenant(client), new_tenant(client)
    assert slack(client, a, api_app_id="A1", team_id="TA").status_code == 201
    taken = slack(client, b, api_app_id="A1", team_id="TA")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    assert slack(client, a, api_app_id="A1", team_id="TA").status_code == 200  # its owner may update it
    half = slack(client, b, name="half", api_app_id="A1")
    assert half.status_code == 422


def test_only_the_routed_integrations_secret_is_tried(client: TestClient) -> None:
    """A request signed with another tenant's secret does not verify: no search over every secret."""
    a, b = new_tenant(client), new_tenant(client)
    slack(client, a, secret="secret-a", api_app_id="A1", team_id="TA")
    slack(client, b, secret="secret-b", api_app_id="A1", team_id="TB")
    body = event("spoofed", team="TA")
    assert client.post("/hooks/slack/events", content=body, headers=signed(body, "secret-b")).status_code == 401
    unrouted = event("no ids", team="")
    assert client.post("/hooks/slack/events", content=unrouted, headers=signed(unrouted, "secret-a")).status_code == 404
    assert job_count(client, a) == 0 and job_count(client, b) == 0


def test_undecryptable_secrets_are_a_clear_401_and_other_tenants_still_work(client: TestClient) -> None:
    from sqlalchemy import update

    from labelwise.models.tables import Integration

    a, b = new_tenant(client), new_tenant(client)
    url_a = slack(client, a, api_app_id="A1", team_id="TA").json()["hook_path"]
    slack(client, b, api_app_id="A1", team_id="TB")
    other_key = Fernet(Fernet.generate_key()).encrypt(b"{}").decode()
    with client.app.state.labelwise.sessions.begin() as s:  # type: ignore[attr-defined]
        s.execute(update(Integration).where(Integration.inbound_key == "slack:A1:TA").values(secrets=other_key))
    body = event("for A", team="TA")
    for url in ("/hooks/slack/events", url_a):
        r = client.post(url, content=body, headers=signed(body))
        assert r.status_code == 401 and "secrets cannot be read" in r.json()["error"]["message"]
    ok = event("for B", team="TB")
    assert client.post("/hooks/slack/events", content=ok, headers=signed(ok)).status_code == 200
    assert job_count(client, b) == 1


def test_a_hook_body_over_the_cap_is_413_before_any_check(client: TestClient) -> None:
    a = new_tenant(client)
    slack(client, a, api_app_id="A1", team_id="TA")
    body = event("x" * 300_000, team="TA")
    r = client.post("/hooks/slack/events", content=body, headers=signed(body))
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert job_count(client, a) == 0


@pytest.mark.parametrize("stamp", [b"\xb2", "\u0663\u0663".encode(), b"1" * 40, b"-1"])
def test_a_malformed_slack_timestamp_is_401_not_500(client: TestClient, stamp: bytes) -> None:
    """'\\xb2' (a header's latin-1 byte) passes str.isdigit() but int() refuses it."""
    a = new_tenant(client)
    url = slack(client, a, api_app_id="A1", team_id="TA").json()["hook_path"]
    body = event("hi", team="TA")
    headers: dict[str, Any] = {**signed(body), "X-Slack-Request-Timestamp": stamp}
    r = client.post(url, content=body, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_a_malformed_zendesk_timestamp_is_401_not_500(client: TestClient, stamp: str) -> None:
    import base64

    a = new_tenant(client)
    r = client.put(
        "/v1/integrations/zd",
        json={
            "kind": "zendesk",
            "label_set": "tiny",
            "settings": {"base_url": "https://acme.zendesk.com", "email": "a@b.c"},
            "secrets": {"api_token": "t", "webhook_secret": "whs"},
        },
        headers=a,
    )
    url = r.json()["hook_path"]
    body = json.dumps({"ticket": {"id": 1, "subject": "s"}}).encode()
    sig = base64.b64encode(hmac.new(b"whs", stamp.encode() + body, hashlib.sha256).digest()).decode()
    headers = {"X-Zendesk-Webhook-Signature-Timestamp": stamp, "X-Zendesk-Webhook-Signature": sig}
    r = client.post(url, content=body, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_a_signed_jira_event_nested_too_deep_is_400_not_500(client: TestClient) -> None:
    """Atlassian Document Format is walked recursively: a hostile depth ends as a 400, not a RecursionError."""
    a = new_tenant(client)
    r = client.put(
        "/v1/integrations/jira",
        json={
            "kind": "jira",
            "label_set": "tiny",
            "settings": {"base_url": "https://acme.atlassian.net", "email": "a@b.c"},
            "secrets": {"api_token": "t", "webhook_secret": "jws"},
        },
        headers=a,
    )
    depth = 700  # json.loads reads it; walking it recursively overflows the interpreter's stack
    node = '{"type": "paragraph", "content": [' * depth + '{"type": "text", "text": "deep"}' + "]}" * depth
    body = (
        '{"webhookEvent": "jira:issue_created", "issue": {"key": "S-1", "fields": {"summary": "s", "description": '
        + node
        + "}}}"
    ).encode()
    digest = hmac.new(b"jws", body, hashlib.sha256).hexdigest()
    answer = client.post(r.json()["hook_path"], content=body, headers={"X-Hub-Signature": f"sha256={digest}"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_request", answer.text
    assert job_count(client, a) == 0
