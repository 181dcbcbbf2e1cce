"""A database outage is retried with back-off, not lost."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from labelwise.models.db import upgrade
from tests.stacks import Stack

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"


def test_message_waits_out_a_database_outage(tmp_path: Path) -> None:
    later = tmp_path / "not-yet"  # the database cannot be opened until this directory exists
    stack = Stack(
        "outage",
        tmp_path,
        f"sqlite:///{later / 'db.sqlite'}",
        f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
        f"q{uuid.uuid4().hex[:6]}",
    )
    try:
        stack.start_worker(LABELWISE_DB_RETRY_BACKOFF_MAX_S="2")
        task_id = stack.send({"tenant": "acme", "label_set": "tiny", "text": "I was charged twice"})
        deadline = time.monotonic() + 60
        while "database unavailable" not in stack.worker_log():
            assert time.monotonic() < deadline, stack.worker_log()[-2000:]
            time.sleep(0.2)
        ready = Stack("ready", tmp_path, f"sqlite:///{tmp_path / 'ready' / 'db.sqlite'}", stack.broker_url, stack.queue)
        (tmp_path / "ready").mkdir()
        upgrade(ready.database_url)
        ready.cli("tenant", "create", "acme")
        ready.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "acme")
        (tmp_path / "ready").rename(later)  # the database comes back, complete, all at once
        job = stack.wait_job(task_id, timeout_s=60)
        assert job["status"] == "done" and job["chosen"] == ["billing"]
    finally:
        stack.stop_workers()
