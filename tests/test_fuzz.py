"""Every parser of outside input, fuzzed with atheris for a fixed number of runs (LABELWISE_FUZZ_RUNS,
default 10,000 each, a few seconds): 0 crashes, 0 uncaught exceptions. Each run starts from a corpus of
valid inputs (written to a temporary directory: libFuzzer adds to its corpus)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).parent.parent
RUNS = int(os.environ.get("LABELWISE_FUZZ_RUNS", "10000"))
JSON, SIGNED_NOW_RAW = b"\x01", b"\x01\x00\x01"  # FuzzedDataProvider choices: see tests/fuzz/targets.py

MESSAGE = {
    "tenant": "acme",
    "label_set": "support",
    "text": "I was charged twice",
    "idempotency_key": "k-1",
    "metadata": {"ticket": 7, "tags": ["a", "b"], "nested": {"x": 1.5}},
    "reply_to": {"integration": "slack-main", "channel": "C1", "thread_ts": "1700000000.000100"},
}
DOCUMENT = {
    "name": "support",
    "threshold": 0.3,
    "fallback": "needs-triage",
    "margin": 0.02,
    "labels": [
        {"name": "billing", "description": "Invoices and charges.", "examples": ["charged twice"], "threshold": 0.35},
        {"name": "bug", "description": "Something is broken."},
    ],
}
YAML = "name: support\nthreshold: 0.3\nlabels:\n  - name: billing\n    description: Money.\n    examples: [a, b]\n"
SLACK = {
    "type": "event_callback",
    "team_id": "T1",
    "api_app_id": "A1",
    "event_id": "Ev1",
    "event": {"type": "message", "channel": "C1", "user": "U1", "text": "hello", "ts": "1700000000.000100"},
}
JIRA = {
    "webhookEvent": "jira:issue_created",
    "issue": {
        "key": "SUP-1",
        "fields": {"summary": "Broken", "description": {"type": "doc", "content": [{"type": "text", "text": "x"}]}},
    },
}
ZENDESK = {"ticket": {"id": 1, "subject": "Refund", "description": "charged twice"}}
GITHUB = {
    "action": "opened",
    "repository": {"full_name": "acme/app"},
    "issue": {"number": 7, "title": "Refund", "body": "I was charged twice", "labels": []},
}
CONFLUENCE = {"event": "page_created", "userAccountId": "u1", "page": {"id": "123", "version": 2}}
SEEDS = {
    "task_message": [JSON + json.dumps(MESSAGE).encode(), JSON + b'{"text": "\\ud800", "metadata": {"x": 1e999}}'],
    "label_set_document": [b"\x00" + JSON + json.dumps(DOCUMENT).encode(), b"\x01\x00" + YAML.encode()],
    "slack_hook": [
        SIGNED_NOW_RAW + json.dumps(SLACK).encode(),
        SIGNED_NOW_RAW + b'{"type": "url_verification", "challenge": "c"}',
    ],
    "jira_hook": [SIGNED_NOW_RAW + json.dumps(JIRA).encode()],
    "zendesk_hook": [b"\x01\x01" + b"\x00" + b"2026-01-01T00:00:00Z" + json.dumps(ZENDESK).encode()],
    "github_hook": [SIGNED_NOW_RAW + json.dumps(GITHUB).encode()],
    "confluence_hook": [SIGNED_NOW_RAW + json.dumps(CONFLUENCE).encode()],
}


@pytest.mark.parametrize("target", sorted(SEEDS))
def test_fuzz_target_runs_without_an_uncaught_exception(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS[target]):
        (corpus / f"seed{i}").write_bytes(seed)
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            target,
            f"-runs={RUNS}",
            "-max_len=8192",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],  # fmt: skip
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    tail = proc.stderr[-3000:]
    assert proc.returncode == 0 and "Uncaught Python exception" not in proc.stderr, tail
    assert f"Done {RUNS} runs" in proc.stderr, tail
    assert time.monotonic() - started < 240
