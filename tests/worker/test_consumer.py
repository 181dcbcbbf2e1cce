"""The batch consumer seen from outside: Celery's task events (what Flower shows) for messages that
skip Celery's pool. (Holding a batch through a database outage: tests/worker/test_outage.py.)"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from labelwise import brokers
from tests.stacks import Stack

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("stack", ["pg-redis", "pg-rabbitmq"], indirect=True)]
DATA = Path(__file__).parent.parent / "data"


def test_flower_sees_classify_tasks_received_and_succeeded(stack: Stack) -> None:
    """labelwise.classify skips Celery's pool, but its task events still go out (Flower shows them)."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    stack.cli("tenant", "create", tenant)
    stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", tenant)
    brokers.install()
    app = Celery(broker=stack.broker_url, set_as_current=False)
    seen: dict[str, list[str]] = {}
    ready = threading.Event()
    receivers: list[Any] = []

    def listen() -> None:
        with app.connection_for_read() as conn:

            def on_event(event: dict[str, Any]) -> None:
                if event.get("uuid"):
                    seen.setdefault(event["uuid"], []).append(event["type"])

            receiver = app.events.Receiver(conn, handlers={"*": on_event})
            receivers.append(receiver)
            ready.set()
            with contextlib.suppress(TimeoutError):  # a read timing out once the test stopped listening
                receiver.capture(limit=None, timeout=None, wakeup=False)

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(30)
    time.sleep(1)  # the receiver's queue is bound
    task_id = stack.send({"tenant": tenant, "label_set": "tiny", "text": "I was charged twice"})
    assert stack.wait_job(task_id)["status"] == "done"
    deadline = time.monotonic() + 30
    while "task-succeeded" not in seen.get(task_id, []) and time.monotonic() < deadline:
        time.sleep(0.1)
    receivers[0].should_stop = True  # stop listening before the next test, whatever the outcome below
    listener.join(10)
    assert not listener.is_alive()
    assert "task-received" in seen.get(task_id, []) and "task-succeeded" in seen.get(task_id, []), seen.get(task_id)
    app.close()
