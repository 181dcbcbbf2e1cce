"""Worker metrics: a real `labelwise worker -p 2 --metrics-port` serves the sum of its processes'
metrics and the queue depth; JSON logs; the heartbeat row comes and goes with the worker."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from labelwise.worker import metrics
from tests.stacks import free_port, make_stack

DATA = Path(__file__).parent.parent / "data"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(port: int, *, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_failure_reasons_are_classes_not_texts() -> None:
    assert metrics.failure_reason("unknown tenant 'acme'") == "unknown_tenant"
    assert metrics.failure_reason("unknown label set 'support'") == "unknown_label_set"
    assert metrics.failure_reason("label set 'support' has no version") == "unknown_label_set"
    assert metrics.failure_reason("internal error: KeyError: 'x'") == "internal_error"
    assert metrics.failure_reason("text: must not be empty") == "invalid_message"


def test_recording_is_a_no_op_until_configured_then_counts() -> None:
    """Library use records nothing; a configured process counts deliveries and label-index builds."""
    metrics.reset()
    metrics.delivery_done("slack", "delivered")  # not configured: nothing happens, nothing raises
    registry = CollectorRegistry()
    try:
        metrics.configure(registry=registry)
        metrics.delivery_done("slack", "delivered")
        metrics.delivery_done("webhook", "retrying")
        metrics.label_index_built(refined=True, seconds=0.2)
        got = registry.get_sample_value
        assert got("labelwise_worker_deliveries_total", {"kind": "slack", "status": "delivered"}) == 1
        assert got("labelwise_worker_deliveries_total", {"kind": "webhook", "status": "retrying"}) == 1
        assert got("labelwise_worker_label_index_builds_total", {"kind": "refined"}) == 1
        assert got("labelwise_worker_label_index_build_seconds_sum", {"kind": "refined"}) == pytest.approx(0.2)
    finally:
        metrics.reset()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["embedded", "pg-rabbitmq"])
def test_worker_serves_metrics_of_all_its_processes_and_logs_json(kind: str, tmp_path: Path) -> None:
    port = free_port()
    with make_stack(kind, home=tmp_path, queue=f"lw-test-{uuid.uuid4().hex[:8]}") as stack:
        stack.start_worker(
            "--processes",
            "2",
            "--metrics-port",
            str(port),
            LABELWISE_LOG_FORMAT="json",
            LABELWISE_WORKER_HEARTBEAT_S="1",
        )
        stack.warm_up()
        stack.cli("tenant", "create", "acme")
        stack.cli("labels", "apply", str(DATA / "tiny.yaml"), "--tenant", "acme")
        secret = "Zebra-unique-text-7731 the app crashes when I export"
        ids = stack.send_many([{"tenant": "acme", "label_set": "tiny", "text": f"{secret} {i}"} for i in range(6)])
        bad = stack.send({"tenant": "ghost", "label_set": "tiny", "text": "hello"})
        for job_id in [*ids, bad]:
            stack.wait_job(job_id)
        text = scrape(port)
        got = samples(text)

        def value(name: str, **labels: str) -> float:
            return got.get((name, tuple(sorted(labels.items()))), 0.0)

        done = value("labelwise_worker_jobs_total", status="done", reason="chosen") + value(
            "labelwise_worker_jobs_total", status="done", reason="abstained"
        )
        assert done == 7, text  # the six and the warm-up, summed over both processes
        assert value("labelwise_worker_jobs_total", status="failed", reason="unknown_tenant") == 1
        assert value("labelwise_worker_job_latency_seconds_count") == 8
        assert value("labelwise_worker_batch_size_sum") == 8
        assert value("labelwise_worker_encode_seconds_count") >= 2
        assert value("labelwise_worker_label_index_builds_total", kind="initial") >= 2
        assert value("labelwise_queue_messages", queue=stack.queue) == 0
        assert value("labelwise_broker_up") == 1
        assert "acme" not in text and "tiny" not in text  # no tenant or label-set names by default

        plain = [line for line in stack.worker_log().splitlines() if line.strip() and not line.startswith("{")]
        assert plain == []  # every line is a JSON object
        lines = [json.loads(line) for line in stack.worker_log().splitlines() if line.strip()]
        assert any(r["message"].startswith("worker metrics on http://") for r in lines)
        mine = [r for r in lines if r.get("job_id") in ids]
        assert {r["job_id"] for r in mine} == set(ids)
        assert all(r["tenant"] == "acme" and r["label_set"] == "tiny" and r["duration_s"] >= 0 for r in mine)
        assert all(r["task_id"] == r["job_id"] for r in mine)
        assert secret not in stack.worker_log()  # never the message texts

        from labelwise.models import workers
        from labelwise.models.db import make_engine, make_session_factory

        engine = make_engine(stack.database_url)
        with make_session_factory(engine)() as s:
            assert len(workers.list_workers(s)) == 2  # one heartbeat row per process
        stack.stop_workers()
        with make_session_factory(engine)() as s:
            assert workers.list_workers(s) == []  # a clean shutdown removes them
        engine.dispose()
