"""A worker killed mid-batch loses nothing: unacknowledged messages come back to the next worker."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from labelwise.models.db import make_engine, make_session_factory
from labelwise.models.tables import Job
from tests.stacks import make_stack

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"
N = 150


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


@pytest.mark.parametrize("kind", ["pg-rabbitmq", "pg-redis"])
def test_sigkill_mid_batch_loses_no_message(kind: str, tmp_path: Path) -> None:
    extra = {"LABELWISE_BROKER_VISIBILITY_TIMEOUT_S": "5"} if kind == "pg-redis" else {}
    with make_stack(kind, home=tmp_path, queue=f"lw-kill-{uuid.uuid4().hex[:8]}") as stack:
        worker = stack.start_worker(LABELWISE_BATCH_SIZE="8", **extra)
        stack.warm_up()
        tenant = f"k{uuid.uuid4().hex[:6]}"
        stack.cli("tenant", "create", tenant)
        stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", tenant)
        ids = [
            stack.send({"tenant": tenant, "label_set": "tiny", "text": f"I was charged twice, order {i}"})
            for i in range(N)
        ]
        deadline = time.monotonic() + 60
        while statuses(stack.database_url, tenant).get("done", 0) < 10:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(worker.pid, signal.SIGKILL)  # mid-stream: some batches committed, some in flight
        worker.wait()
        before = statuses(stack.database_url, tenant)
        assert before.get("done", 0) < N, "the worker finished before it was killed; nothing was tested"
        stack.start_worker(LABELWISE_BATCH_SIZE="8", **extra)
        views = [stack.wait_job(i, timeout_s=120) for i in ids]
        assert [v["status"] for v in views] == ["done"] * N
        assert all(v["chosen"] == ["billing"] for v in views)
        assert statuses(stack.database_url, tenant) == {"done": N}
