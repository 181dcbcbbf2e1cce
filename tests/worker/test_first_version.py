"""A light tenant's new label set of many texts never holds the express lane: a real worker, a real broker.

Tenant C floods (the main lane is busy), tenant B sends the first message on its new set of 1,500 texts
(seconds of embedding), and tenant A, light too, sends one message just after. The first version was
built inside the express lane's batch that held B's message, and A's message waited there for it: the
main lane takes a light tenant's message only while no heavy tenant's waits. Now the express lane leaves
B's message to the main lane, which builds the version in its own batch, and A's message is done first.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from labelwise.models.db import make_engine
from labelwise.models.tables import Job
from tests.stacks import make_stack

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"
FLOOD = 600


def big_set(path: Path, texts: int) -> Path:
    """A label set of ``texts`` new texts (labels of 100 examples), as a file for ``labels apply``."""
    salt = uuid.uuid4().hex[:8]  # new texts: none of their vectors is stored yet
    labels = [
        {"name": f"topic-{i}", "examples": [f"a question about topic {i}, case {j} ({salt})" for j in range(100)]}
        for i in range(texts // 101)
    ]
    path.write_text(json.dumps({"name": "big", "threshold": 0.2, "labels": labels}))
    return path


def wait_running(url: str, job_id: str, timeout_s: float = 120) -> None:
    """Until the job is claimed (running) or done."""
    engine = make_engine(url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            with engine.connect() as conn:
                status = conn.execute(select(Job.status).where(Job.id == job_id)).scalar()
            if status in ("running", "done", "failed"):
                return
            assert time.monotonic() < deadline, f"job {job_id} never ran: {status}"
            time.sleep(0.02)
    finally:
        engine.dispose()


def finished(view: dict[str, object]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(view["finished_at"]))


@pytest.mark.parametrize("bulk", [False, True], ids=["one-process", "bulk-process"])
def test_a_light_tenants_new_big_set_never_holds_another_light_tenant(bulk: bool, tmp_path: Path) -> None:
    with make_stack("pg-redis", home=tmp_path, queue=f"lw-first-{uuid.uuid4().hex[:8]}") as stack:
        a, b, c = (f"{x}{uuid.uuid4().hex[:6]}" for x in "abc")
        for tenant in (a, b, c):
            stack.cli("tenant", "create", tenant)
            stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", tenant)
        stack.cli("labels", "apply", str(big_set(tmp_path / "big.json", 1500)), "--tenant", b)
        # with a bulk process, the main lane's batches (and the build) run in it
        stack.start_worker(LABELWISE_BATCH_SIZE="8", LABELWISE_TENANT_SHARE="8", LABELWISE_BULK_PROCESS=str(bulk))
        stack.warm_up()
        long = "I was charged twice for my subscription this month, please refund the second charge. " * 6
        c_ids = stack.send_many([{"tenant": c, "label_set": "tiny", "text": f"{i}: {long}"} for i in range(FLOOD)])
        stack.wait_job(c_ids[20], timeout_s=120)  # C's flood keeps the main lane busy
        b_id = stack.send({"tenant": b, "label_set": "big", "text": "a question about topic 3"})
        wait_running(stack.database_url, b_id)  # its first version is being built
        a_id = stack.send({"tenant": a, "label_set": "tiny", "text": "where is my invoice for March?"})
        a_view = stack.wait_job(a_id, timeout_s=120)
        b_view = stack.wait_job(b_id, timeout_s=300)
        assert a_view["status"] == b_view["status"] == "done", (a_view, b_view)
        assert b_view["label_set_version"] == 1 and b_view["chosen"], b_view
        assert finished(a_view) < finished(b_view), (
            f"A's message waited for B's new set: A done {a_view['finished_at']}, B {b_view['finished_at']}"
        )
        assert stack.wait_job(c_ids[-1], timeout_s=300)["status"] == "done"
        log = stack.worker_log()
        assert "Traceback" not in log, log[-3000:]
