"""The main lane's batches in a bulk process of the worker's own (labelwise.worker.bulk): a flood is
classified there, a bulk process that dies loses nothing and takes no other tenant down with it, and it
never outlives its worker. Real worker processes on PostgreSQL + Redis."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest

from tests.stacks import Stack, make_stack
from tests.worker.test_kill import statuses
from tests.worker.test_no_loss import new_tenant

pytestmark = pytest.mark.slow


def bulk_pid(worker_pid: int, *, timeout_s: float = 120, other_than: int | None = None) -> int:
    """The pid of the worker's bulk process (its multiprocessing child), once it is running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(worker_pid).children():
            try:
                cmdline = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "multiprocessing" in cmdline and "resource_tracker" not in cmdline and child.pid != other_than:
                return child.pid
        time.sleep(0.1)
    raise AssertionError("the worker has no bulk process")


def wait_loaded(stack: Stack, pid: int, *, timeout_s: float = 120) -> None:
    """Until the bulk process ``pid`` has loaded its model (its log line in the worker's log)."""
    deadline = time.monotonic() + timeout_s
    while f"bulk process {pid}: model loaded" not in stack.worker_log():
        assert time.monotonic() < deadline, "the bulk process never loaded its model"
        time.sleep(0.1)


def gone(pid: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def assert_below_every_other_process(pid: int, worker_pid: int) -> None:
    """The bulk process ``pid`` runs at BULK_PROCESS_NICE in a session of its own, and, where Linux
    shares the cores between sessions first (autogroups), that session is at BULK_PROCESS_NICE too:
    in its worker's session its nice would only order it against the worker's own threads."""
    from labelwise.priority import BULK_PROCESS_NICE

    assert os.getpriority(os.PRIO_PROCESS, pid) == BULK_PROCESS_NICE
    assert os.getsid(pid) == pid != os.getsid(worker_pid)
    autogroup = Path(f"/proc/{pid}/autogroup")
    if autogroup.exists():
        assert autogroup.read_text().split()[-1] == str(BULK_PROCESS_NICE), autogroup.read_text()


def long_text(i: int) -> str:
    return f"Order {i}: I was charged twice for my subscription this month. " * 8


def test_a_killed_bulk_process_loses_nothing_and_the_worker_goes_on(tmp_path: Path) -> None:
    """A flood (one tenant, hundreds of messages: the main lane) is classified in the bulk process; it is
    killed mid-flood: the batch it held is tried again in the next one, every job is done once, the worker
    itself never stops, and once the worker is stopped (SIGTERM) its bulk process is gone too."""
    with make_stack("pg-redis", home=tmp_path, queue=f"lw-bulk-{uuid.uuid4().hex[:8]}") as stack:
        tenant = new_tenant(stack)
        n = 300
        worker = stack.start_worker(LABELWISE_BATCH_SIZE="16", LABELWISE_BULK_PROCESS="true")
        first = bulk_pid(worker.pid)
        stack.warm_up()
        wait_loaded(stack, first)  # the flood goes to it from its first batch
        assert_below_every_other_process(first, worker.pid)
        ids = stack.send_many([{"tenant": tenant, "label_set": "tiny", "text": long_text(i)} for i in range(n)])
        deadline = time.monotonic() + 180
        while statuses(stack.database_url, tenant).get("done", 0) < 40:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(first, signal.SIGKILL)
        assert gone(first, timeout_s=10)
        assert statuses(stack.database_url, tenant).get("done", 0) < n, "the flood was over before the kill"
        views = [stack.wait_job(i, timeout_s=180) for i in ids]
        assert [v["status"] for v in views] == ["done"] * n
        assert all(v["chosen"] == ["billing"] for v in views)
        assert statuses(stack.database_url, tenant) == {"done": n}
        assert worker.poll() is None, "the worker stopped with its bulk process"
        second = bulk_pid(worker.pid, other_than=first)
        log = stack.worker_log()
        # it was killed holding (or being handed) a batch of the flood, and its successor took the rest
        assert f"bulk process {first} ended with a batch" in log, log[-3000:]
        assert f"bulk process {second} ready" in log, log[-3000:]
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        assert gone(second, timeout_s=10), "the bulk process outlived its worker"


def test_a_message_that_kills_the_bulk_process_fails_alone_and_the_worker_lives(tmp_path: Path) -> None:
    """The message kills each bulk process that encodes it: it fails after LABELWISE_MAX_ATTEMPTS, every
    other message of its flood is done, and the worker (with every other tenant's express lane) never
    died. A worker killed outright takes its bulk process with it."""
    extra = {
        "LABELWISE_BULK_PROCESS": "true",
        "LABELWISE_BATCH_SIZE": "16",
        "LABELWISE_MAX_ATTEMPTS": "3",
        "LABELWISE_FAULT_INJECTION": "worker-exit-on-text=KILL-THE-WORKER",
    }
    with make_stack("pg-redis", home=tmp_path, queue=f"lw-bulk-{uuid.uuid4().hex[:8]}") as stack:
        tenant = new_tenant(stack)
        worker = stack.start_worker(**extra)
        wait_loaded(stack, bulk_pid(worker.pid))
        stack.warm_up()
        texts = [f"Order {i}: I was charged twice this month" for i in range(40)]
        texts.insert(20, "KILL-THE-WORKER: I was charged twice")  # deep in the flood: the main lane's
        ids = stack.send_many([{"tenant": tenant, "label_set": "tiny", "text": t} for t in texts])
        views = [stack.wait_job(i, timeout_s=240) for i in ids]
        killer = views.pop(20)
        assert killer["status"] == "failed" and "gave up after 3 attempts" in killer["error"], killer
        assert [v["status"] for v in views] == ["done"] * 40, [v.get("error") for v in views]
        assert worker.poll() is None, "the message killed the worker, not only its bulk process"
        assert stack.worker_log().count("ended with a batch") >= 2
        last = bulk_pid(worker.pid)
        worker.kill()  # SIGKILL to the worker alone, not its process group
        worker.wait()
        assert gone(last, timeout_s=30), "the bulk process outlived its worker"


def test_what_the_bulk_process_sends_back_keeps_its_kind_and_loses_no_measurement() -> None:
    """An outcome to retry goes back as a RetryableError of the same kind and words (whatever it was), and
    the timings the child took since its last answer go with the answer, each once."""
    from labelwise.errors import DatabaseUnavailableError, RetryableError
    from labelwise.worker.bulk import Measured, _portable

    down = _portable(DatabaseUnavailableError("the database is down"))
    assert type(down) is DatabaseUnavailableError and down.message == "the database is down"
    other = _portable(ValueError("odd"))
    assert type(other) is RetryableError and other.message == "ValueError: odd"
    measured = Measured()
    measured.encode_done(0.25)
    measured.label_index_built(refined=False, seconds=3.0)
    taken = measured.take()
    measured.encode_done(0.5)
    assert (taken.encodes, taken.index_builds) == ([0.25], [(False, 3.0)])
    assert measured.take().encodes == [0.5] and measured.take().encodes == []
