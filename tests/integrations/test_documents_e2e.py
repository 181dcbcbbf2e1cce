"""Document platforms end to end: signed GitHub and Confluence events in through the API, a real worker
reading the whole long text, labels (and the evidence) out to stand-in servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.apiclient import Api
from tests.classify.test_documents import NEEDLE, long_document
from tests.integrations.test_e2e import put, wait_delivery
from tests.platforms import Platform, Reply, platform

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["embedded", "pg-redis"], indirect=True)]


@pytest.fixture
def stand_in() -> Iterator[Platform]:
    with platform() as p:
        yield p


def github_event(action: str = "opened", *, body: str, number: int = 7, **extra: Any) -> bytes:
    issue = {"number": number, "title": "Question about my account", "body": body}
    repo = {"name": "app", "owner": {"login": "acme"}}
    return json.dumps({"action": action, "issue": issue, "repository": repo, **extra}).encode()


def github_headers(body: bytes, *, delivery: str, event: str = "issues", secret: bytes = b"gh-hook") -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": signature, "X-GitHub-Event": event, "X-GitHub-Delivery": delivery}


def github_integration(api: Api, h: dict[str, str], p: Platform) -> dict[str, Any]:
    return put(
        api,
        h,
        "gh",
        {
            "kind": "github",
            "label_set": "tiny",
            "settings": {"base_url": f"{p.url}/api/v3", "comment": True},
            "secrets": {"token": "ghp-test", "webhook_secret": "gh-hook"},
        },
    )


def test_github_issue_opened_gets_labels_and_an_evidence_comment_and_a_redelivery_is_deduped(
    api: Api, stand_in: Platform
) -> None:
    _, h = api.tenant_with_set()
    integration = github_integration(api, h, stand_in)
    assert integration["hook_path"] == f"/hooks/github/{integration['id']}"
    text = long_document(10_000)
    event, delivery = github_event(body=text), str(uuid.uuid4())
    r = api.client.post(integration["hook_path"], content=event, headers=github_headers(event, delivery=delivery))
    assert r.status_code == 200 and r.json()["ok"], r.text
    job_id = r.json()["job_id"]
    [labels] = stand_in.wait_for("/api/v3/repos/acme/app/issues/7/labels")
    assert labels.method == "POST" and labels.json() == {"labels": ["billing"]}
    assert labels.headers["Authorization"] == "Bearer ghp-test"
    [comment] = stand_in.wait_for("/api/v3/repos/acme/app/issues/7/comments")
    assert "billing" in comment.json()["body"] and NEEDLE in comment.json()["body"], "the comment quotes the evidence"
    job = api.wait(job_id, h)
    assert job["chosen"] == ["billing"] and job["windows"] > 5
    [evidence] = job["evidence"]
    assert NEEDLE in (job_text := "Question about my account\n\n" + text)[evidence["start"] : evidence["end"]]
    assert len(job_text) > 10_000
    wait_delivery(api, job_id, "delivered")

    again = api.client.post(integration["hook_path"], content=event, headers=github_headers(event, delivery=delivery))
    assert again.status_code == 200 and again.json() == {"ok": True, "duplicate": True}
    ours = github_event("labeled", body=text, label={"name": "billing"})
    ignored = api.client.post(
        integration["hook_path"], content=ours, headers=github_headers(ours, delivery=str(uuid.uuid4()))
    )
    assert ignored.status_code == 200 and ignored.json()["ignored"], "our own label edit starts no round"
    time.sleep(1.0)
    assert len(stand_in.requests_to("/api/v3/repos/acme/app/issues/7/labels")) == 1


def test_github_signature_is_checked_before_parsing_and_ping_is_answered(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    integration = github_integration(api, h, stand_in)
    garbage = b"{not json"
    bad = api.client.post(
        integration["hook_path"], content=garbage, headers=github_headers(garbage, delivery="d1", secret=b"wrong")
    )
    assert bad.status_code == 401
    ping = b'{"zen": "Keep it logically awesome."}'
    r = api.client.post(
        integration["hook_path"], content=ping, headers=github_headers(ping, delivery="d2", event="ping")
    )
    assert r.status_code == 200 and r.json().get("pong") is True
    assert stand_in.received == []


def confluence_event(event: str, *, version: int, account: str = "557058:user") -> bytes:
    page = {"id": "123456", "title": "Team notes", "version": version, "spaceKey": "SUP"}
    return json.dumps({"event": event, "userAccountId": account, "page": page, "timestamp": 1}).encode()


def confluence_headers(body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature": "sha256=" + hmac.new(b"cf-hook", body, hashlib.sha256).hexdigest()}


def test_confluence_page_is_fetched_classified_whole_and_labelled_once(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    integration = put(
        api,
        h,
        "wiki",
        {
            "kind": "confluence",
            "label_set": "tiny",
            "settings": {"base_url": stand_in.url, "email": "bot@acme.test", "account_id": "557058:bot"},
            "secrets": {"api_token": "cf-token", "webhook_secret": "cf-hook"},
        },
    )
    paragraphs = "".join(f"<p>{s}</p>" for s in long_document(10_000).split(". "))
    macro = '<ac:structured-macro ac:name="info"><ac:parameter ac:name="title">x</ac:parameter></ac:structured-macro>'
    storage = f"<h1>Notes</h1>{paragraphs}{macro}"
    stand_in.script(
        "/wiki/rest/api/content/123456",
        Reply(body={"id": "123456", "title": "Team notes", "body": {"storage": {"value": storage}}}),
    )
    event = confluence_event("page_updated", version=3)
    r = api.client.post(integration["hook_path"], content=event, headers=confluence_headers(event))
    assert r.status_code == 200 and r.json()["ok"] and r.json()["job_id"], r.text
    [fetch] = stand_in.requests_to("/wiki/rest/api/content/123456")
    assert fetch.method == "GET" and fetch.headers["Authorization"].startswith("Basic ")
    [label] = stand_in.wait_for("/wiki/rest/api/content/123456/label")
    assert label.method == "POST" and label.json() == [{"prefix": "global", "name": "billing"}]
    job = api.wait(r.json()["job_id"], h)
    assert job["chosen"] == ["billing"] and job["windows"] > 5 and job["evidence"][0]["label"] == "billing"

    # Our label does not change the page's version; a page_updated for it, or one our account caused, is no round.
    same = api.client.post(integration["hook_path"], content=event, headers=confluence_headers(event))
    assert same.json() == {"ok": True, "duplicate": True}
    ours = confluence_event("page_updated", version=4, account="557058:bot")
    assert api.client.post(integration["hook_path"], content=ours, headers=confluence_headers(ours)).json()["ignored"]
    time.sleep(1.0)
    assert len(stand_in.requests_to("/wiki/rest/api/content/123456")) == 1, "no second fetch"
    assert len(stand_in.requests_to("/wiki/rest/api/content/123456/label")) == 1


def test_confluence_outage_answers_503_and_the_retry_is_classified(api: Api, stand_in: Platform) -> None:
    _, h = api.tenant_with_set()
    integration = put(
        api,
        h,
        "wiki2",
        {
            "kind": "confluence",
            "label_set": "tiny",
            "settings": {"base_url": stand_in.url, "email": "bot@acme.test"},
            "secrets": {"api_token": "cf-token", "webhook_secret": "cf-hook"},
        },
    )
    page = {
        "title": "Login",
        "body": {"storage": {"value": "<p>I cannot log in, the password reset never arrives.</p>"}},
    }
    stand_in.script("/wiki/rest/api/content/123456", Reply(status=503), Reply(body=page))
    event = confluence_event("page_created", version=1)
    first = api.client.post(integration["hook_path"], content=event, headers=confluence_headers(event))
    assert first.status_code == 503
    second = api.client.post(integration["hook_path"], content=event, headers=confluence_headers(event))
    assert second.status_code == 200 and second.json()["job_id"]
    assert api.wait(second.json()["job_id"], h)["chosen"] == ["account-access"]
