"""A worker killed mid-batch loses nothing: unacknowledged messages come back to the next worker."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import yaml

from labelwise.models.db import make_engine, make_session_factory
from labelwise.models.tables import Job
from tests.stacks import make_stack

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"
N = 150


def text(i: int) -> str:
    """A long billing message (about 100 tokens), so that each batch takes a while to encode: the
    worker then holds its full prefetch most of the time and the kill lands mid-batch. (The instant
    right after a message is taken, where kombu's own Redis transport loses it, celery/celery#7950, is
    covered by tests/brokers/test_contract.py.)"""
    return f"Order {i}: I was charged twice for my subscription this month. " * 8


def statuses(url: str, tenant: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            rows = s.query(Job.status, Job.attempts).filter(Job.tenant_name == tenant).all()
    finally:
        engine.dispose()
    counts: dict[str, int] = {}
    for status, _ in rows:
        counts[status] = counts.get(status, 0) + 1
    return counts


@pytest.mark.parametrize("kind", ["pg-rabbitmq", "pg-redis", "embedded"])
def test_sigkill_mid_batch_loses_no_message(kind: str, tmp_path: Path) -> None:
    """(The embedded broker used to lose every message the killed worker held: up to its prefetch.)"""
    extra = {"LABELWISE_BROKER_VISIBILITY_TIMEOUT_S": "5"} if kind != "pg-rabbitmq" else {}
    with make_stack(kind, home=tmp_path, queue=f"lw-kill-{uuid.uuid4().hex[:8]}") as stack:
        tenant = f"k{uuid.uuid4().hex[:6]}"
        stack.cli("tenant", "create", tenant)
        stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", tenant)
        # The whole burst is queued before the worker starts: published one by one to a running worker,
        # messages were classified as fast as they were sent and none was in flight at the kill.
        ids = stack.send_many([{"tenant": tenant, "label_set": "tiny", "text": text(i)} for i in range(N)])
        worker = stack.start_worker(LABELWISE_BATCH_SIZE="8", **extra)
        deadline = time.monotonic() + 180  # includes the worker's cold start
        while statuses(stack.database_url, tenant).get("done", 0) < 10:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # A batch has just been committed and acked, and the consumer is refilling its prefetch (the
        # kombu window above); a tenth of a second later the next batch is being encoded.
        time.sleep(0.1)
        os.killpg(worker.pid, signal.SIGKILL)  # mid-batch: some batches committed, some in flight
        worker.wait()
        before = statuses(stack.database_url, tenant)
        assert before.get("done", 0) < N, "the worker finished before it was killed; nothing was tested"
        stack.start_worker(LABELWISE_BATCH_SIZE="8", **extra)
        views = [stack.wait_job(i, timeout_s=120) for i in ids]
        assert [v["status"] for v in views] == ["done"] * N
        assert all(v["chosen"] == ["billing"] for v in views)
        assert statuses(stack.database_url, tenant) == {"done": N}


@pytest.mark.parametrize("kind", ["embedded", "pg-redis"])
def test_a_message_that_kills_its_worker_fails_alone(kind: str, tmp_path: Path) -> None:
    """Its batch-mates were claimed again with it each time its worker died, reached the attempt limit
    with it and failed as if they were poison too. Jobs claimed before are now tried one by one, after
    the rest of their batch is committed: the killer fails with its reason, every other message is done."""
    extra = {
        "LABELWISE_BROKER_VISIBILITY_TIMEOUT_S": "5",
        "LABELWISE_MAX_ATTEMPTS": "3",
        "LABELWISE_FAULT_INJECTION": "worker-exit-on-text=KILL-THE-WORKER",
    }
    with make_stack(kind, home=tmp_path, queue=f"lw-poison-{uuid.uuid4().hex[:8]}") as stack:
        tenant = f"p{uuid.uuid4().hex[:6]}"
        stack.cli("tenant", "create", tenant)
        stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", tenant)
        texts = [f"Order {i}: I was charged twice this month" for i in range(12)]
        texts.insert(5, "KILL-THE-WORKER: I was charged twice")
        ids = stack.send_many([{"tenant": tenant, "label_set": "tiny", "text": t} for t in texts])
        deadline = time.monotonic() + 300
        worker = stack.start_worker(LABELWISE_BATCH_SIZE="16", **extra)  # all thirteen in one batch
        deaths = 0
        while statuses(stack.database_url, tenant).get("done", 0) + statuses(stack.database_url, tenant).get(
            "failed", 0
        ) < len(texts):
            assert time.monotonic() < deadline, statuses(stack.database_url, tenant)
            if worker.poll() is not None:  # a supervisor restarts it
                deaths += 1
                worker = stack.start_worker(LABELWISE_BATCH_SIZE="16", **extra)
            time.sleep(0.2)
        views = [stack.wait_job(i, timeout_s=30) for i in ids]
        killer = views.pop(5)
        assert killer["status"] == "failed" and "gave up after 3 attempts" in killer["error"], killer
        assert [v["status"] for v in views] == ["done"] * 12, [v.get("error") for v in views]
        assert deaths >= 2


def test_a_worker_stopped_while_the_model_runs_exits_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    """SIGTERM while a batch was inside the model (here: the first version of a set of 3,000 texts, built
    in that batch): the interpreter finalized around the daemon thread's onnxruntime call and the worker
    aborted (SIGABRT, 'terminate called without an active exception'). Now it waits for the call (at
    most one chunk of StoredEncoder's texts), exits 0, and the next worker does the message."""
    examples = [{"name": f"l{i}", "examples": [f"message {j} about topic {i}" for j in range(100)]} for i in range(30)]
    (tmp_path / "huge.yaml").write_text(yaml.safe_dump({"name": "huge", "labels": examples}))
    with make_stack("pg-redis", home=tmp_path, queue=f"lw-stop-{uuid.uuid4().hex[:8]}") as stack:
        worker = stack.start_worker()
        stack.warm_up()
        tenant = f"stop{uuid.uuid4().hex[:6]}"
        stack.cli("tenant", "create", tenant)
        stack.cli("labels", "apply", str(tmp_path / "huge.yaml"), "--tenant", tenant)
        job = stack.send({"tenant": tenant, "label_set": "huge", "text": "message 3 about topic 7"})
        deadline = time.monotonic() + 60
        while statuses(stack.database_url, tenant).get("running", 0) < 1:  # claimed: its batch builds the set
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.5)
        os.killpg(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=90) == 0, stack.worker_log()[-3000:]
        assert "terminate called" not in stack.worker_log()
        stack.start_worker()
        view = stack.wait_job(job, timeout_s=180)
        assert view["status"] == "done" and view["chosen"] == ["l7"], view
