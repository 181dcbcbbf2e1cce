"""Nothing lost, nothing stuck: real worker processes (and a real API process) on every stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.stacks import ONNX_DIR, Stack, free_port

pytestmark = pytest.mark.slow
DATA = Path(__file__).parent.parent / "data"


def new_tenant(stack: Stack) -> str:
    name = f"t{uuid.uuid4().hex[:8]}"
    stack.cli("tenant", "create", name)
    stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", name)
    return name


def test_poison_messages_fail_alone_and_their_batch_mates_of_other_tenants_are_done(stack: Stack) -> None:
    """A lone surrogate once failed the claim of its whole batch: another tenant's messages in that batch
    ended with no job at all. Every bad message now fails alone, with its tenant, key and reason."""
    good_tenant, bad_tenant = new_tenant(stack), new_tenant(stack)
    base = {"tenant": bad_tenant, "label_set": "tiny"}
    poison = {
        "surrogate": {**base, "text": "hi \ud800 there"},
        "infinite": {**base, "text": "hi", "metadata": {"x": float("inf")}},
        "huge-metadata": {**base, "text": "hi", "metadata": {"blob": "x" * 1_100_000}},
        "deep": {**base, "text": "hi", "metadata": _nested(200)},
        "wrong-type": {**base, "text": ["hi"]},
        "unknown-field": {**base, "text": "hi", "colour": "red"},
    }
    calls: list[dict[str, Any]] = []
    for i in range(24):  # good messages of another tenant, with a poison one every few
        calls.append(
            {"tenant": good_tenant, "label_set": "tiny", "text": "I was charged twice", "idempotency_key": f"g{i}"}
        )
        if i % 4 == 0 and poison:
            name, kwargs = poison.popitem()
            calls.append({**kwargs, "idempotency_key": f"bad-{name}"})
    ids = stack.send_many(calls)
    views = {c["idempotency_key"]: stack.wait_job(i) for c, i in zip(calls, ids, strict=True)}
    for key, view in views.items():
        if key.startswith("g"):
            assert view["status"] == "done" and view["chosen"] == ["billing"], view
        else:
            assert view["status"] == "failed" and view["error"], view
            assert view["tenant"] == bad_tenant and view["idempotency_key"] == key, view
    assert "unpaired surrogate" in views["bad-surrogate"]["error"]
    assert "not a finite number" in views["bad-infinite"]["error"]
    assert "metadata" in views["bad-huge-metadata"]["error"] and "limit" in views["bad-huge-metadata"]["error"]
    assert "nested deeper" in views["bad-deep"]["error"]
    assert all(w.poll() is None for w in stack.workers)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_repeated_key_is_the_same_job_or_a_conflict_the_sender_can_find(stack: Stack) -> None:
    tenant = new_tenant(stack)
    message = {"tenant": tenant, "label_set": "tiny", "text": "Where is my invoice?", "idempotency_key": "k1"}
    first = stack.wait_job(stack.send(message))
    repeat_id = stack.send(message)
    other_id = stack.send({**message, "text": "My password does not work"})
    other = stack.wait_job(other_id)
    assert other["status"] == "failed" and other["idempotency_key"] == "k1" and first["job_id"] in other["error"]
    shown = stack.cli_json("jobs", "show", repeat_id)  # the repeat's task id finds the job it repeated
    assert shown["job_id"] == first["job_id"] and shown["status"] == "done"
    assert stack.cli_json("jobs", "show", "--key", "k1", "--tenant", tenant)["job_id"] == first["job_id"]
    bad = stack.wait_job(stack.send({"tenant": tenant, "label_set": "tiny", "text": "", "idempotency_key": "k2"}))
    assert bad["status"] == "failed" and bad["idempotency_key"] == "k2" and bad["tenant"] == tenant
    assert stack.cli_json("jobs", "show", "--key", "k2", "--tenant", tenant)["job_id"] == bad["job_id"]


def test_an_api_killed_between_commit_and_publish_loses_no_job(stack: Stack) -> None:
    """The job was committed but never published: it stayed queued forever, and the client's retry
    with the same Idempotency-Key got that stuck job back. The reconciler now publishes it."""
    tenant = new_tenant(stack)
    token = stack.cli_json("token", "create", "--tenant", tenant)["token"]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "order-7"}
    body = {"label_set": "tiny", "text": "I was charged twice"}
    dying = stack.start_api(LABELWISE_FAULT_INJECTION="api-exit-before-publish=1")
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"{dying.url}/v1/jobs", json=body, headers=headers, timeout=30)
    assert dying.proc.wait(timeout=30) == 137  # it died after the commit, before the publish
    api = stack.start_api()
    try:
        again = httpx.post(f"{api.url}/v1/jobs", json=body, headers=headers, timeout=30)
        assert again.status_code == 200  # the client's retry: the same, committed job
        job = stack.wait_job(again.json()["job_id"], timeout_s=60)
        assert job["status"] == "done" and job["chosen"] == ["billing"]
    finally:
        api.stop()


def test_sigterm_stops_labelwise_up_and_its_worker(tmp_path: Path) -> None:
    """SIGTERM (systemd, Docker) stopped the API and left the worker running."""
    port = free_port()
    env = {**os.environ, "LABELWISE_HOME": str(tmp_path / "home"), "LABELWISE_WORKER_PROCESSES": "1"}
    env["LABELWISE_ONNX_DIR"] = str(ONNX_DIR)
    up = subprocess.Popen(
        [sys.executable, "-m", "labelwise", "up", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not _worker_children(up.pid) or not _healthy(port):
            assert up.poll() is None and time.monotonic() < deadline, "labelwise up did not start"
            time.sleep(0.3)
        workers = _worker_children(up.pid)
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, f"worker processes still running after SIGTERM: {alive}"
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        for child in _worker_children(up.pid):
            child.kill()


def _worker_children(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if "worker" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_huge_label_set_edit_does_not_stall_another_tenants_messages(stack: Stack, tmp_path: Path) -> None:
    """Thousands of new examples were embedded inside the batcher's batch: every tenant on that worker
    waited for them. They are embedded aside now, while the set's previous version serves its messages."""
    quick, heavy = new_tenant(stack), new_tenant(stack)
    (tmp_path / "small.yaml").write_text("name: huge\nlabels:\n  - name: billing\n  - name: bugs\n")
    stack.cli("labels", "apply", str(tmp_path / "small.yaml"), "--tenant", heavy)
    labels = "".join(
        f"  - name: topic{k}\n    examples:\n"
        + "".join(f"      - 'question {i} about topic {k} from {heavy}'\n" for i in range(100))
        for k in range(30)
    )  # 3,000 new texts to embed: tens of seconds of a core
    (tmp_path / "huge.yaml").write_text(f"name: huge\nlabels:\n{labels}")
    stack.cli("labels", "apply", str(tmp_path / "huge.yaml"), "--tenant", heavy)
    started = time.monotonic()
    heavy_id = stack.send({"tenant": heavy, "label_set": "huge", "text": "Where is my invoice?"})
    time.sleep(0.5)  # the worker has taken it and started building version 2
    quick_id = stack.send({"tenant": quick, "label_set": "tiny", "text": "I was charged twice"})
    assert stack.wait_job(quick_id, timeout_s=30)["status"] == "done"
    heavy_job = stack.wait_job(heavy_id, timeout_s=30)
    quick_s = time.monotonic() - started
    assert heavy_job["status"] == "done" and heavy_job["label_set_version"] == 1  # the previous version served
    deadline = time.monotonic() + 300
    while True:  # and once version 2 is built, it serves
        job = stack.wait_job(stack.send({"tenant": heavy, "label_set": "huge", "text": "topic 3"}), timeout_s=60)
        if job["label_set_version"] == 2:
            break
        assert time.monotonic() < deadline, "version 2 was never built"
        time.sleep(2)
    built_s = time.monotonic() - started
    assert quick_s < built_s / 2, (quick_s, built_s)
