"""Slack, Jira, Zendesk and GitHub replies quote the evidence of a long text (pure request builders)."""

from __future__ import annotations

import json

from labelwise.integrations import ADAPTERS
from labelwise.integrations.base import Payload
from labelwise.integrations.confluence import storage_to_text
from labelwise.integrations.evidence import evidence_quotes

TEXT = "Office chatter. " * 40 + "I was charged twice for my subscription. " + "More chatter. " * 10
START = TEXT.index("I was charged")
RESULT = {
    "chosen": ["billing"],
    "abstained": False,
    "labels": [{"name": "billing", "score": 0.61}],
    "windows": 12,
    "truncated": False,
    "evidence": [{"label": "billing", "start": START, "end": START + 40, "score": 0.66}],
}
QUOTE = 'billing: "I was charged twice for my subscription."'


def steps(kind: str, settings: dict, secrets: dict, target: dict) -> list:  # type: ignore[type-arg]
    adapter = ADAPTERS[kind]
    return adapter.build_steps(
        Payload("d1", RESULT, TEXT, target),
        adapter.settings_model.model_validate(settings),
        adapter.secrets_model.model_validate(secrets),
    )


def test_quotes_only_texts_read_in_several_windows() -> None:
    assert evidence_quotes(RESULT, TEXT) == [QUOTE]
    assert evidence_quotes({**RESULT, "windows": 1}, TEXT) == [], "a short message is its own evidence"


def test_slack_thread_reply_quotes_the_evidence() -> None:
    [reply] = steps("slack", {}, {"bot_token": "xoxb-1"}, {"channel": "C1", "thread_ts": "1.2"})
    assert json.loads(reply.request.content)["text"].endswith("\n> " + QUOTE)


def test_jira_comment_and_zendesk_note_quote_the_evidence() -> None:
    jira = steps(
        "jira", {"base_url": "https://a.test", "email": "e", "comment": True}, {"api_token": "t"}, {"issue_key": "S-1"}
    )
    paragraphs = json.loads(jira[-1].request.content)["body"]["content"]
    assert paragraphs[-1]["content"][0]["text"] == QUOTE
    zendesk = steps(
        "zendesk",
        {"base_url": "https://z.test", "email": "e", "internal_note": True},
        {"api_token": "t"},
        {"ticket_id": "9"},
    )
    assert json.loads(zendesk[-1].request.content)["ticket"]["comment"]["body"].endswith("\n" + QUOTE)


def test_github_adds_labels_without_replacing_and_comments_the_evidence() -> None:
    labels, comment = steps(
        "github", {"comment": True}, {"token": "ghp"}, {"owner": "acme", "repo": "app", "number": 7}
    )
    assert labels.request.method == "POST" and str(labels.request.url).endswith("/repos/acme/app/issues/7/labels")
    assert str(labels.request.url).startswith("https://api.github.com/")
    assert QUOTE in json.loads(comment.request.content)["body"]


def test_confluence_storage_format_becomes_lines_of_plain_text() -> None:
    storage = (
        "<h1>Refunds</h1><p>Charged <strong>twice</strong>&nbsp;this month.</p>"
        '<ac:structured-macro ac:name="code"><ac:parameter ac:name="language">py</ac:parameter>'
        "<ac:plain-text-body><![CDATA[print(1)]]></ac:plain-text-body></ac:structured-macro>"
        "<ul><li>one</li><li>two</li></ul>"
    )
    assert storage_to_text(storage) == "Refunds\nCharged twice this month.\nprint(1)\none\ntwo"
