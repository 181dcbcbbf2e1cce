"""One tenant's flood does not keep another tenant's message waiting: a real worker, a real broker.

Tenant B has hundreds of messages queued ahead of tenant A's one. With one first-come, first-served
queue, A's job was the last to finish; now B's messages past its share go to the overflow lane, the
main queue keeps moving, and A's job is done while most of B's are still waiting. Nothing is lost:
every one of B's jobs ends done, once.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from labelwise.models.db import make_engine, make_session_factory
from labelwise.models.tables import Job
from tests.stacks import make_stack

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"
FLOOD = 400


def counts(url: str, tenant: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            rows = s.execute(
                select(Job.status, func.count()).where(Job.tenant_name == tenant).group_by(Job.status)
            ).all()
    finally:
        engine.dispose()
    return {status: n for status, n in rows}


@pytest.mark.parametrize("kind", ["pg-redis", "pg-rabbitmq", "embedded"])
def test_a_flooding_tenant_does_not_hold_back_another(kind: str, tmp_path: Path) -> None:
    with make_stack(kind, home=tmp_path, queue=f"lw-fair-{uuid.uuid4().hex[:8]}") as stack:
        a, b = f"a{uuid.uuid4().hex[:6]}", f"b{uuid.uuid4().hex[:6]}"
        for tenant in (a, b):
            stack.cli("tenant", "create", tenant)
            stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", tenant)
        stack.start_worker(LABELWISE_BATCH_SIZE="8", LABELWISE_TENANT_SHARE="8")
        stack.warm_up()
        long = "I was charged twice for my subscription this month, please refund the second charge. " * 6
        b_ids = stack.send_many([{"tenant": b, "label_set": "tiny", "text": f"{i}: {long}"} for i in range(FLOOD)])
        a_id = stack.send({"tenant": a, "label_set": "tiny", "text": "where is my invoice for March?"})
        view = stack.wait_job(a_id, timeout_s=120)
        b_done_then = counts(stack.database_url, b).get("done", 0)
        assert view["status"] == "done", view
        # first-come, first-served: all 400 of B were done first. On RabbitMQ the worker moves B's backlog
        # aside itself, about as fast as it classifies B's messages on a loaded machine (210 of 400 once,
        # in a full suite run): well short of all 400, but not always of half
        assert b_done_then < FLOOD * 3 // 4, f"A finished only after {b_done_then} of B's {FLOOD} jobs"
        deadline = time.monotonic() + 300
        while counts(stack.database_url, b).get("done", 0) < FLOOD:
            assert time.monotonic() < deadline, counts(stack.database_url, b)
            time.sleep(0.2)
        assert counts(stack.database_url, b) == {"done": FLOOD}
        for job_id in b_ids[:: FLOOD // 10]:
            assert stack.wait_job(job_id)["status"] == "done"
        log = stack.worker_log()
        assert "Traceback" not in log, log[-3000:]
