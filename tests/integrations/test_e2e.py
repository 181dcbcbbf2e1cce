"""Platforms in, results out: signed events through the API, a real worker, deliveries to stand-in
servers on 127.0.0.1 that answer 200, 429, 500 or a timeout on demand."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from labelwise import pipeline
from labelwise.models.tables import Integration
from tests.apiclient import Api
from tests.platforms import Platform, Reply, platform

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]
DATA = Path(__file__).parent.parent / "data"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EVENT_SCHEMA = json.loads((DATA / "slack_events_wrapper_schema.json").read_text())


@pytest.fixture
def stand_in() -> Iterator[Platform]:
    with platform() as p:
        yield p


def put(api: Api, headers: dict[str, str], name: str, doc: dict[str, Any]) -> dict[str, Any]:
    r = api.client.put(f"/v1/integrations/{name}", json=doc, headers=headers)
    assert r.status_code in (200, 201), r.text
    return r.json()


def deliveries(api: Api, job_id: str) -> list[dict[str, Any]]:
    with api.client.app.state.labelwise.sessions() as s:  # type: ignore[attr-defined]
        return [
            d for d in pipeline.list_deliveries(s, tenant_id=None, status=None, limit=1000) if d["job_id"] == job_id
        ]


def wait_delivery(api: Api, job_id: str, status: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = deliveries(api, job_id)
        if found and found[0]["status"] == status:
            return found[0]
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def slack_event(text: str, *, event_id: str, user: str = "U1", **extra: Any) -> bytes:
    event = {
        "type": "event_callback",
        "token": "x",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authed_users": ["UBOT"],
        "event": {
            "type": "message",
            "channel": "C1",
            "user": user,
            "text": text,
            "ts": "1700000000.000100",
            "event_ts": "1700000000.000100",
            **extra,
        },
    }
    jsonschema.validate(event, EVENT_SCHEMA)  # what we send ourselves looks like what Slack sends
    return json.dumps(event).encode()


def slack_headers(body: bytes, secret: str = "slack-signing", ts: int | None = None) -> dict[str, str]:
    stamp = str(ts or int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}", "Content-Type": "application/json"}


def slack_integration(api: Api, h: dict[str, str], p: Platform) -> dict[str, Any]:
    return put(
        api,
        h,
        "slack-main",
        {
            "kind": "slack",
            "label_set": "tiny",
            "settings": {"base_url": p.url, "reactions": {"billing": "moneybag"}, "bot_user_id": "UBOT"},
            "secrets": {"bot_token": "xoxb-test", "signing_secret": "slack-signing"},
        },
    )


def test_slack_event_in_threaded_reply_and_reaction_out(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    integration = slack_integration(api, h, stand_in)
    url = integration["hook_path"]
    body = slack_event("I was charged twice for my subscription", event_id=f"Ev{uuid.uuid4().hex[:8]}")
    first = api.client.post(url, content=body, headers=slack_headers(body))
    assert first.status_code == 200 and first.json()["ok"], first.text
    retry = api.client.post(url, content=body, headers={**slack_headers(body), "X-Slack-Retry-Num": "1"})
    assert retry.json() == {"ok": True, "duplicate": True}
    [reply] = stand_in.wait_for("/chat.postMessage")
    assert reply.headers["Authorization"] == "Bearer xoxb-test"
    sent = reply.json()
    assert sent["channel"] == "C1" and sent["thread_ts"] == "1700000000.000100" and "billing" in sent["text"]
    [reaction] = stand_in.wait_for("/reactions.add")
    assert reaction.json() == {"channel": "C1", "timestamp": "1700000000.000100", "name": "moneybag"}
    assert len(api.client.get("/v1/jobs", headers=h).json()["jobs"]) == 1
    assert wait_delivery(api, first.json()["job_id"], "delivered")["steps_done"] == ["reply", "reaction:billing"]


def test_slack_url_verification_and_ignored_messages(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    url = slack_integration(api, h, stand_in)["hook_path"]
    challenge = json.dumps({"type": "url_verification", "token": "x", "challenge": "abc123"}).encode()
    assert api.client.post(url, content=challenge, headers=slack_headers(challenge)).json() == {"challenge": "abc123"}
    for body in (
        slack_event("our reply", event_id="Ev-own", user="UBOT"),
        slack_event("edited", event_id="Ev-edit", subtype="message_changed"),
        slack_event("a bot", event_id="Ev-bot", bot_id="B9"),
    ):
        assert "ignored" in api.client.post(url, content=body, headers=slack_headers(body)).json()
    assert api.client.get("/v1/jobs", headers=h).json()["jobs"] == []


def test_jira_issue_created_gets_labels(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    integration = put(
        api,
        h,
        "jira",
        {
            "kind": "jira",
            "label_set": "tiny",
            "settings": {"base_url": stand_in.url, "email": "bot@acme.test"},
            "secrets": {"api_token": "jira-token", "webhook_secret": "jira-hook"},
        },
    )
    event = json.dumps(
        {
            "webhookEvent": "jira:issue_created",
            "issue": {
                "key": "SUP-42",
                "fields": {
                    "summary": "App crashes",
                    "description": "The app crashes every time I open the settings page.",
                },
            },
        }
    ).encode()
    signature = "sha256=" + hmac.new(b"jira-hook", event, hashlib.sha256).hexdigest()
    r = api.client.post(integration["hook_path"], content=event, headers={"X-Hub-Signature": signature})
    assert r.status_code == 200 and r.json()["ok"], r.text
    [update] = stand_in.wait_for("/rest/api/3/issue/SUP-42")
    assert update.method == "PUT" and update.json() == {"update": {"labels": [{"add": "bug-report"}]}}


def test_zendesk_new_ticket_gets_tags(api: Api, stand_in: Platform) -> None:
    import base64
    import datetime as dt

    _, h = api.tenant_with_set()
    integration = put(
        api,
        h,
        "zendesk",
        {
            "kind": "zendesk",
            "label_set": "tiny",
            "settings": {"base_url": stand_in.url, "email": "agent@acme.test"},
            "secrets": {"api_token": "zd-token", "webhook_secret": "zd-hook"},
        },
    )
    body = json.dumps(
        {
            "ticket": {
                "id": 4711,
                "subject": "Locked out",
                "description": "I cannot log in, the password reset email never arrives.",
            }
        }
    ).encode()
    ts = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(hmac.new(b"zd-hook", ts.encode() + body, hashlib.sha256).digest()).decode()
    headers = {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": ts}
    assert api.client.post(integration["hook_path"], content=body, headers=headers).status_code == 200
    [tags] = stand_in.wait_for("/api/v2/tickets/4711/tags")
    assert tags.method == "PUT" and tags.json() == {"tags": ["account-access"]}
    assert tags.headers["Authorization"].startswith("Basic ")


def webhook_job(api: Api, stand_in: Platform, *replies: Reply) -> tuple[dict[str, str], str]:
    _, h = api.tenant_with_set()
    stand_in.script("/hook", *replies)
    put(
        api,
        h,
        "customer",
        {
            "kind": "webhook",
            "settings": {"url": f"{stand_in.url}/hook", "subscribe": ["tiny"]},
            "secrets": {"signing_secrets": [WHSEC]},
        },
    )
    job = api.client.post("/v1/jobs", json={"label_set": "tiny", "text": "Where is my invoice?"}, headers=h).json()
    return h, job["job_id"]


def test_webhook_failing_twice_then_ok_receives_one_delivery_id(api: Api, stand_in: Platform) -> None:
    _, job_id = webhook_job(api, stand_in, Reply(500), Reply(500), Reply(200))
    received = stand_in.wait_for("/hook", 3)
    assert len({r.headers["webhook-id"] for r in received}) == 1
    for r in received:
        assert Webhook(WHSEC).verify(r.body, r.headers)["data"]["job_id"] == job_id
    delivery = wait_delivery(api, job_id, "delivered")
    assert delivery["attempts"] == 3 and delivery["delivery_id"] == received[0].headers["webhook-id"]
    assert delivery["kind"] == "webhook" and delivery["integration"] == "customer"  # names the integration


def test_retry_after_is_honoured_and_timeouts_are_retried(api: Api, stand_in: Platform) -> None:
    """Retry-After is honoured up to the schedule's cap (1 s in the test stacks)."""
    _, job_id = webhook_job(api, stand_in, Reply(429, headers={"Retry-After": "1"}), Reply(delay_s=1.5), Reply(200))
    first, second, third = stand_in.wait_for("/hook", 3)
    assert second.at - first.at >= 0.95  # the backoff alone would be 0.1-0.2 s
    assert wait_delivery(api, job_id, "delivered")["attempts"] == 3


def test_dead_deliveries_are_listed_and_replayed(api: Api, stand_in: Platform) -> None:
    _, job_id = webhook_job(api, stand_in, Reply(503))
    dead = wait_delivery(api, job_id, "dead")
    assert dead["attempts"] == 4 and "HTTP 503" in dead["last_error"]
    listed = api.stack.cli_json("deliveries", "list", "--status", "dead")
    assert dead["delivery_id"] in [d["delivery_id"] for d in listed]
    stand_in.script("/hook", Reply(200))
    assert api.stack.cli_json("deliveries", "replay", dead["delivery_id"])["replayed"] == [dead["delivery_id"]]
    assert wait_delivery(api, job_id, "delivered")["delivery_id"] == dead["delivery_id"]
    assert {r.headers["webhook-id"] for r in stand_in.requests_to("/hook")} == {dead["delivery_id"]}


def test_a_4xx_is_permanent(api: Api, stand_in: Platform) -> None:
    _, job_id = webhook_job(api, stand_in, Reply(400, body={"error": "bad"}))
    dead = wait_delivery(api, job_id, "dead")
    assert dead["attempts"] == 1 and "HTTP 400" in dead["last_error"] and len(stand_in.requests_to("/hook")) == 1


def test_bad_inbound_requests_enqueue_nothing(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    url = slack_integration(api, h, stand_in)["hook_path"]
    body = slack_event("I was charged twice", event_id="Ev-bad")
    bad_sig = {**slack_headers(body), "X-Slack-Signature": "v0=" + "0" * 64}
    stale = slack_headers(body, ts=int(time.time()) - 600)
    assert api.client.post(url, content=body, headers=bad_sig).status_code == 401
    assert api.client.post(url, content=body, headers=stale).status_code == 401
    assert api.client.post(url, content=body).status_code == 401  # unsigned
    junk = b"{not json"
    r = api.client.post(url, content=junk, headers=slack_headers(junk))
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request"
    assert api.client.post("/hooks/jira/int_doesnotexist", content=b"{}").status_code == 404
    assert api.client.get("/v1/jobs", headers=h).json()["jobs"] == []


def test_secrets_are_encrypted_at_rest_and_never_returned(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    slack_integration(api, h, stand_in)
    shown = api.client.get("/v1/integrations/slack-main", headers=h)
    assert "xoxb-test" not in shown.text and "slack-signing" not in shown.text
    assert shown.json()["secrets_set"] == ["bot_token", "signing_secret"]
    updated = put(api, h, "slack-main", {"kind": "slack", "label_set": "tiny", "settings": {"base_url": stand_in.url}})
    assert updated["secrets_set"] == ["bot_token", "signing_secret"]  # omitted secrets are kept
    with api.client.app.state.labelwise.sessions() as s:  # type: ignore[attr-defined]
        stored = [row.secrets for row in s.scalars(select(Integration))]
    assert stored and all("xoxb-test" not in x and "slack-signing" not in x for x in stored)


def test_reply_to_must_name_an_integration(api: Api) -> None:
    _, h = api.tenant_with_set()
    r = api.client.post(
        "/v1/jobs", json={"label_set": "tiny", "text": "hi", "reply_to": {"integration": "nope"}}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "reply_to.integration"
