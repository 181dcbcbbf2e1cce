"""End to end through a real broker and a real worker process, on every stack."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from tests.stacks import Stack

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"


def new_tenant(stack: Stack) -> str:
    """A fresh tenant with the tiny label set applied."""
    name = f"t{uuid.uuid4().hex[:8]}"
    assert stack.cli_json("tenant", "create", name)["token"].startswith("lw_")
    assert stack.cli_json("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", name)["version"] == 1
    return name


def test_cli_classify_goes_through_the_queue_and_is_stored(stack: Stack) -> None:
    """`labelwise classify` enqueues, the worker classifies, the stored result has the normative shape."""
    tenant = new_tenant(stack)
    out = stack.cli_json(
        "classify", "I was charged twice for my subscription", "--tenant", tenant, "--label-set", "tiny"
    )
    assert out["status"] == "done", out
    assert out["chosen"] == ["billing"] and out["abstained"] is False
    assert out["label_set_version"] == 1 and out["model"] == "all-MiniLM-L6-v2"
    assert out["labels"][0]["name"] == "billing" and out["labels"][0]["score"] > out["labels"][1]["score"]
    assert set(out) >= {
        "job_id",
        "status",
        "tenant",
        "label_set",
        "label_set_version",
        "model",
        "labels",
        "chosen",
        "abstained",
        "error",
    }
    assert stack.cli_json("jobs", "show", out["job_id"]) == out


def test_plain_celery_client_that_does_not_import_labelwise(stack: Stack) -> None:
    """Another app enqueues with Celery(broker=...).send_task and never imports labelwise."""
    tenant = new_tenant(stack)
    program = textwrap.dedent(
        f"""
        import sys, uuid
        from celery import Celery
        app = Celery(broker={stack.broker_url!r})
        app.conf.task_serializer = "json"
        task_id = str(uuid.uuid4())
        app.send_task("labelwise.classify", task_id=task_id, queue={stack.queue!r}, kwargs={{
            "tenant": {tenant!r}, "label_set": "tiny", "text": "My password reset email never arrives",
            "idempotency_key": "ext-1", "metadata": {{"source": "other-app"}}}})
        assert not any(m.startswith("labelwise") for m in sys.modules), "imported labelwise"
        print(task_id)
        """
    )
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=stack.home)
    assert proc.returncode == 0, proc.stderr
    job = stack.wait_job(proc.stdout.strip())
    assert job["status"] == "done" and job["chosen"] == ["account-access"]
    assert job["metadata"] == {"source": "other-app"} and job["idempotency_key"] == "ext-1"
    assert stack.cli_json("jobs", "show", "--key", "ext-1", "--tenant", tenant)["job_id"] == job["job_id"]


def test_same_idempotency_key_gives_one_job_and_one_classification(stack: Stack) -> None:
    tenant = new_tenant(stack)
    message = {"tenant": tenant, "label_set": "tiny", "text": "Where is my invoice?", "idempotency_key": "k-1"}
    first = stack.wait_job(stack.send(message))
    second_id = stack.send(message)
    stack.wait_job(stack.send({**message, "idempotency_key": "sentinel"}))  # FIFO: the repeat came before it
    jobs = stack.cli_json("jobs", "list", "--tenant", tenant, "--limit", "100")
    keyed = [j for j in jobs if j["idempotency_key"] == "k-1"]
    assert [j["job_id"] for j in keyed] == [first["job_id"]]
    assert second_id not in {j["job_id"] for j in jobs}
    assert stack.worker_log().count(f"job {first['job_id']}: done") == 1


BAD = [
    ("unknown tenant", {"tenant": "no-such-tenant", "label_set": "tiny", "text": "hello"}, "unknown tenant"),
    ("unknown label set", {"label_set": "nope", "text": "hello"}, "unknown label set"),
    ("empty text", {"label_set": "tiny", "text": ""}, "text: must not be empty"),
    ("blank text", {"label_set": "tiny", "text": "  \n "}, "text: must not be empty"),
    ("oversized text", {"label_set": "tiny", "text": "a" * 50_001}, "50,001 characters; the limit is 50,000"),
    ("text of wrong type", {"label_set": "tiny", "text": 123}, "text: input should be a valid string"),
    (
        "tenant of wrong type",
        {"tenant": ["x"], "label_set": "tiny", "text": "hi"},
        "tenant: input should be a valid string",
    ),
    (
        "metadata of wrong type",
        {"label_set": "tiny", "text": "hi", "metadata": "x"},
        "metadata: input should be a valid dictionary",
    ),
    ("missing text", {"label_set": "tiny"}, "text: required field is missing"),
    ("unexpected field", {"label_set": "tiny", "text": "hi", "txet": "hi"}, "txet: unexpected field"),
    ("NUL in text", {"label_set": "tiny", "text": "hi\x00there"}, "NUL character"),
]


def test_bad_messages_fail_with_a_reason_and_the_worker_goes_on(stack: Stack) -> None:
    tenant = new_tenant(stack)
    sent = [(name, stack.send({"tenant": tenant, **kwargs}), reason) for name, kwargs, reason in BAD]
    sent.append(("positional args", stack.send({}, args=[tenant, "tiny", "hi"]), "keyword arguments only"))
    for name, task_id, reason in sent:
        job = stack.wait_job(task_id)
        assert job["status"] == "failed", name
        assert reason in job["error"], (name, job["error"])
    ok = stack.wait_job(stack.send({"tenant": tenant, "label_set": "tiny", "text": "The app crashes on start"}))
    assert ok["status"] == "done" and ok["chosen"] == ["bug-report"]
    assert all(w.poll() is None for w in stack.workers)


def test_an_edited_label_set_is_used_by_the_next_message(stack: Stack, tmp_path: Path) -> None:
    tenant = new_tenant(stack)
    text = "My parcel has not been delivered yet, where is the package?"
    before = stack.wait_job(stack.send({"tenant": tenant, "label_set": "tiny", "text": text}))
    assert before["label_set_version"] == 1 and "shipping" not in before["chosen"]
    edited = (DATA / "tiny.yaml").read_text() + (
        "  - name: shipping\n    description: Deliveries, parcels, tracking numbers and couriers.\n"
    )
    (tmp_path / "tiny.yaml").write_text(edited)
    assert stack.cli_json("labels", "apply", str(tmp_path / "tiny.yaml"), "--tenant", tenant)["version"] == 2
    after = stack.wait_job(stack.send({"tenant": tenant, "label_set": "tiny", "text": text}))
    assert after["label_set_version"] == 2 and after["chosen"] == ["shipping"]
    assert stack.cli_json("labels", "rollback", "tiny", "--to", "1", "--tenant", tenant)["version"] == 1
    rolled = stack.wait_job(stack.send({"tenant": tenant, "label_set": "tiny", "text": text}))
    assert rolled["label_set_version"] == 1 and "shipping" not in rolled["chosen"]


def test_reply_to_an_unknown_integration_is_recorded_on_the_job(stack: Stack) -> None:
    """The job is classified, and its result says that no reply was sent and why."""
    tenant = new_tenant(stack)
    reply_to = {"integration": "slack-typo", "channel": "C0123"}
    job = stack.wait_job(
        stack.send({"tenant": tenant, "label_set": "tiny", "text": "I cannot log in", "reply_to": reply_to})
    )
    assert job["status"] == "done" and job["chosen"] == ["account-access"]
    assert job["warnings"] == ["reply_to names unknown integration 'slack-typo': no reply was sent"]
    assert stack.cli_json("jobs", "show", job["job_id"])["warnings"] == job["warnings"]
    assert stack.cli_json("deliveries", "list", "--tenant", tenant) == []
