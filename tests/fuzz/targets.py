"""One function per parser of outside input, each taking the fuzzer's bytes.

A target may end only with the errors its parser promises (a LabelwiseError: a 4xx for the API, a
failed job for the worker); any other exception is a crash the fuzzer reports."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import atheris

from labelwise.errors import LabelwiseError
from labelwise.integrations import ADAPTERS
from labelwise.labelset import load_yaml, parse_document
from labelwise.messages import parse_message, sanitize, unstorable
from labelwise.pipeline.receiving import check_signature, parse_verified

SECRET = "fuzz-secret"
SECRETS = {
    "slack": {"bot_token": "xoxb-x", "signing_secret": SECRET},
    "jira": {"api_token": "t", "webhook_secret": SECRET},
    "zendesk": {"api_token": "t", "webhook_secret": SECRET},
    "github": {"token": "t", "webhook_secret": SECRET},
    "confluence": {"api_token": "t", "webhook_secret": SECRET},
}
SETTINGS = {
    "slack": {"bot_user_id": "UBOT", "api_app_id": "A1", "team_id": "T1"},
    "jira": {"base_url": "https://acme.atlassian.net", "email": "a@b.c"},
    "zendesk": {"base_url": "https://acme.zendesk.com", "email": "a@b.c"},
    "github": {},
    "confluence": {"base_url": "https://acme.atlassian.net", "email": "a@b.c", "account_id": "me"},
}
MAX_DEPTH = 40  # deeper than the parsers' own limits (32), so the limits themselves are exercised


def json_value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """Any JSON-like value, including what JSON text cannot say but Python's json reads (inf, nan,
    lone surrogates) and nesting past the parsers' limits."""
    kind = fdp.ConsumeIntInRange(0, 9 if depth < MAX_DEPTH else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(8)
    if kind == 3:
        return fdp.PickValueInList([0.5, float("inf"), float("-inf"), float("nan"), 1e308, -0.0])
    if kind in (4, 5, 6):
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))
    if kind == 7:
        return [json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    keys = ["tenant", "label_set", "text", "idempotency_key", "metadata", "reply_to", "integration", "name", "labels"]
    return {
        (fdp.PickValueInList(keys) if fdp.ConsumeBool() else fdp.ConsumeUnicode(8)): json_value(fdp, depth + 1)
        for _ in range(fdp.ConsumeIntInRange(0, 5))
    }


def decoded(data: bytes) -> Any:
    """Half the inputs as JSON text (what arrives on the wire), half built value by value."""
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        try:
            return json.loads(fdp.ConsumeBytes(fdp.remaining_bytes()))
        except (ValueError, RecursionError):  # not JSON: the API and kombu refuse it before any parser
            return None
    return json_value(fdp)


def task_message(data: bytes) -> None:
    """The worker's parser of labelwise.classify kwargs, and the salvage of a message it refuses."""
    value = decoded(data)
    try:
        parse_message(value, max_text_chars=2_000, max_metadata_bytes=4_096)
    except LabelwiseError:
        kept = sanitize(value)
        assert unstorable(kept, max_depth=64) is None, kept  # what a failed job stores is storable


def label_set_document(data: bytes) -> None:
    """The label-set document as JSON (API) and as YAML (CLI, console)."""
    fdp = atheris.FuzzedDataProvider(data)
    as_yaml = fdp.ConsumeBool()
    try:
        if as_yaml:
            load_yaml(fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes()))
        else:
            parse_document(decoded(fdp.ConsumeBytes(fdp.remaining_bytes())), max_texts=200, max_chars=20_000)
    except LabelwiseError:
        pass


def hook(kind: str) -> Callable[[bytes], None]:
    """Verify, then parse, as /hooks/{kind} does; half the bodies are signed with the right secret so
    the parser behind the signature check is reached too."""
    adapter = ADAPTERS[kind]
    secrets = adapter.secrets_model.model_validate(SECRETS[kind])
    config = adapter.settings_model.model_validate(SETTINGS[kind])

    def target(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        signed, now_s = fdp.ConsumeBool(), time.time()
        stamp = fdp.ConsumeUnicode(12) if fdp.ConsumeBool() else str(int(now_s))
        body = fdp.ConsumeBytes(fdp.remaining_bytes()) if fdp.ConsumeBool() else json.dumps(json_value(fdp)).encode()
        headers = (
            signature_headers(kind, body, stamp) if signed else {"X-Slack-Signature": stamp, "X-Hub-Signature": stamp}
        )
        if kind == "github":  # the event name and delivery id are read after the signature check
            headers |= {"X-GitHub-Event": fdp.ConsumeUnicode(12) if fdp.ConsumeBool() else "issues"}
            headers |= {"X-GitHub-Delivery": fdp.ConsumeUnicode(40)}
        adapter.route_key(body)
        try:
            check_signature(adapter, secrets, headers, body, now_s=now_s, tolerance_s=300)
            parse_verified(adapter, body, config, kind=kind, headers=headers)
        except LabelwiseError:
            pass

    return target


def signature_headers(kind: str, body: bytes, stamp: str) -> dict[str, str]:
    key = SECRET.encode()
    raw = stamp.encode("utf-8", "surrogatepass")
    if kind == "slack":
        digest = hmac.new(key, b"v0:" + raw + b":" + body, hashlib.sha256).hexdigest()
        return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}
    if kind in ("jira", "confluence"):
        return {"X-Hub-Signature": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()}
    if kind == "github":
        return {"X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()}
    import base64

    digest = base64.b64encode(hmac.new(key, raw + body, hashlib.sha256).digest()).decode()
    return {"X-Zendesk-Webhook-Signature-Timestamp": stamp, "X-Zendesk-Webhook-Signature": digest}


TARGETS: dict[str, Callable[[bytes], None]] = {
    "task_message": task_message,
    "label_set_document": label_set_document,
    "slack_hook": hook("slack"),
    "jira_hook": hook("jira"),
    "zendesk_hook": hook("zendesk"),
    "github_hook": hook("github"),
    "confluence_hook": hook("confluence"),
}

if __name__ == "__main__":  # pragma: no cover - see tests/fuzz/run.py
    sys.exit("run: python -m tests.fuzz.run NAME [libFuzzer options]")
