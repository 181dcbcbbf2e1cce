"""Each adapter's requests and inbound verification, checked against the platforms' own rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from labelwise.errors import UnauthorizedError
from labelwise.integrations import jira, slack, webhook, zendesk
from labelwise.integrations.base import Payload

DATA = Path(__file__).parent.parent / "data"
RESULT = {
    "job_id": "j1",
    "status": "done",
    "chosen": ["billing", "bug report"],
    "abstained": False,
    "labels": [{"name": "billing", "score": 0.61}, {"name": "bug report", "score": 0.5}],
}


def payload(**target: Any) -> Payload:
    return Payload(delivery_id="dlv_1", result=RESULT, text="I was charged twice", target=target)


def test_webhook_requests_verify_with_the_standardwebhooks_library_for_every_secret() -> None:
    secrets = ["whsec_" + base64.b64encode(b"a" * 24).decode(), "whsec_" + base64.b64encode(b"b" * 24).decode()]
    [step] = webhook.ADAPTER.build_steps(
        payload(), webhook.Settings(url="https://example.invalid/h"), webhook.Secrets(signing_secrets=secrets)
    )
    headers = dict(step.request.headers)
    body = step.request.content
    for secret in secrets:  # rotation: either secret verifies
        assert Webhook(secret).verify(body, headers)["data"] == RESULT
    assert headers["webhook-id"] == "dlv_1"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook("whsec_" + base64.b64encode(b"c" * 24).decode()).verify(body, headers)


SLACK_SPEC = json.loads((DATA / "slack_web_api_subset.json").read_text())


def assert_matches_slack_spec(method: str, request: Any) -> None:
    """The JSON body uses only the method's documented parameters, with their types, and all required ones."""
    params = {p["name"]: p for p in SLACK_SPEC["paths"][f"/{method}"]["post"]["parameters"]}
    body = json.loads(request.content)
    assert set(body) <= {n for n, p in params.items() if p["in"] == "formData"}, set(body)
    assert {n for n, p in params.items() if p.get("required") and p["in"] == "formData"} <= set(body)
    for name, value in body.items():
        assert isinstance(value, {"string": str, "boolean": bool}[params[name]["type"]]), name
    assert request.headers["Authorization"].startswith("Bearer xoxb-")  # the spec's required token
    assert "application/json" in SLACK_SPEC["paths"][f"/{method}"]["post"]["consumes"]


def test_slack_reply_reaction_and_route_match_the_web_api_description() -> None:
    config = slack.Settings(
        base_url="https://slack.invalid/api", reactions={"billing": "moneybag"}, channels={"billing": "C0BILLING"}
    )
    steps = slack.ADAPTER.build_steps(
        payload(channel="C1", thread_ts="1.0", ts="1.0"), config, slack.Secrets(bot_token="xoxb-1")
    )
    by_name = {s.name: s.request for s in steps}
    assert set(by_name) == {"reply", "reaction:billing", "route:billing"}
    assert_matches_slack_spec("chat.postMessage", by_name["reply"])
    assert_matches_slack_spec("reactions.add", by_name["reaction:billing"])
    assert_matches_slack_spec("chat.postMessage", by_name["route:billing"])
    reply = json.loads(by_name["reply"].content)
    assert reply["thread_ts"] == "1.0" and "billing" in reply["text"]
    assert json.loads(by_name["route:billing"].content)["channel"] == "C0BILLING"


SLACK_EXAMPLE = {  # Slack's published example ("Verifying requests from Slack")
    "secret": "8f742231b10e8888abcd99yyyzzz85a5",
    "timestamp": "1531420618",
    "body": (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
        b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
        b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    ),
    "signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
}


def test_slack_signature_check_passes_slacks_published_example() -> None:
    secrets = slack.Secrets(bot_token="xoxb-1", signing_secret=SLACK_EXAMPLE["secret"])
    headers = {"X-Slack-Request-Timestamp": SLACK_EXAMPLE["timestamp"], "X-Slack-Signature": SLACK_EXAMPLE["signature"]}
    slack.ADAPTER.verify(headers, SLACK_EXAMPLE["body"], secrets, now_s=1531420618 + 60, tolerance_s=300)
    with pytest.raises(UnauthorizedError, match="window"):
        slack.ADAPTER.verify(headers, SLACK_EXAMPLE["body"], secrets, now_s=1531420618 + 301, tolerance_s=300)
    with pytest.raises(UnauthorizedError, match="does not match"):
        slack.ADAPTER.verify(headers, SLACK_EXAMPLE["body"] + b"x", secrets, now_s=1531420618, tolerance_s=300)


@pytest.mark.parametrize(
    ("event", "ignored"),
    [
        ({"type": "message", "user": "U1", "text": "hi", "subtype": "message_changed"}, True),
        ({"type": "message", "bot_id": "B1", "text": "hi"}, True),
        ({"type": "message", "user": "UBOT", "text": "hi"}, True),
        ({"type": "message", "user": "U1", "text": "  "}, True),
        ({"type": "reaction_added", "user": "U1"}, True),
        ({"type": "message", "user": "U1", "text": "I was charged twice"}, False),
    ],
)
def test_slack_ignores_bots_edits_and_our_own_messages(event: dict[str, Any], ignored: bool) -> None:
    body = {"type": "event_callback", "event_id": "Ev1", "event": {"channel": "C1", "ts": "1.5", **event}}
    parsed = slack.ADAPTER.parse(json.dumps(body).encode(), slack.Settings(bot_user_id="UBOT"))
    assert (parsed.ignored is not None) == ignored
    if not ignored:
        assert parsed.target == {"channel": "C1", "thread_ts": "1.5", "ts": "1.5"} and parsed.event_id == "Ev1"


def test_jira_adds_labels_without_replacing_and_verifies_x_hub_signature() -> None:
    config = jira.Settings(base_url="https://acme.invalid", email="bot@acme.invalid", comment=True)
    secrets = jira.Secrets(api_token="t", webhook_secret="s3cret")
    steps = jira.ADAPTER.build_steps(payload(issue_key="SUP-7"), config, secrets)
    labels, comment = steps
    assert labels.request.method == "PUT" and labels.request.url.path == "/rest/api/3/issue/SUP-7"
    assert json.loads(labels.request.content) == {"update": {"labels": [{"add": "billing"}, {"add": "bug-report"}]}}
    assert labels.request.headers["Authorization"].startswith("Basic ")
    assert comment.request.url.path == "/rest/api/3/issue/SUP-7/comment"
    body = b'{"webhookEvent": "jira:issue_created"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    jira.ADAPTER.verify({"X-Hub-Signature": good}, body, secrets, now_s=0, tolerance_s=300)
    with pytest.raises(UnauthorizedError):
        jira.ADAPTER.verify({"X-Hub-Signature": good}, body + b" ", secrets, now_s=0, tolerance_s=300)


def test_jira_reads_summary_and_adf_description() -> None:
    event = {
        "webhookEvent": "jira:issue_created",
        "issue": {
            "key": "SUP-7",
            "fields": {
                "summary": "Charged twice",
                "description": {
                    "type": "doc",
                    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Please refund one."}]}],
                },
            },
        },
    }
    parsed = jira.ADAPTER.parse(json.dumps(event).encode(), jira.Settings(base_url="https://a.invalid", email="e"))
    assert parsed.text == "Charged twice\n\nPlease refund one." and parsed.target == {"issue_key": "SUP-7"}


def test_zendesk_adds_tags_and_verifies_its_signature() -> None:
    config = zendesk.Settings(base_url="https://acme.invalid", email="agent@acme.invalid", internal_note=True)
    secrets = zendesk.Secrets(api_token="t", webhook_secret="zsecret")
    tags, note = zendesk.ADAPTER.build_steps(payload(ticket_id="42"), config, secrets)
    assert tags.request.method == "PUT" and tags.request.url.path == "/api/v2/tickets/42/tags"
    assert json.loads(tags.request.content) == {"tags": ["billing", "bug_report"]}
    assert json.loads(note.request.content)["ticket"]["comment"]["public"] is False
    body, ts = b'{"ticket": {"id": 42}}', "2026-11-27T10:00:00Z"
    signature = base64.b64encode(hmac.new(b"zsecret", ts.encode() + body, hashlib.sha256).digest()).decode()
    headers = {"X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": ts}
    now = 1795773600.0  # 2026-11-27T10:00:00Z
    zendesk.ADAPTER.verify(headers, body, secrets, now_s=now, tolerance_s=300)
    with pytest.raises(UnauthorizedError, match="window"):
        zendesk.ADAPTER.verify(headers, body, secrets, now_s=now + 3600, tolerance_s=300)
