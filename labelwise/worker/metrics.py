"""Worker metrics in Prometheus format.

Every worker process records into prometheus-client's metrics; ``labelwise worker --metrics-port P``
serves them. With several processes (``-p N``) each child writes to a shared directory
(prometheus-client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``) and the parent process serves the
sum. Queue depth is read from the broker when the endpoint is scraped.

Label values never carry tenant names, label-set names or texts, unless the operator sets
``LABELWISE_METRICS_TENANT_LABELS=true`` (then the job counter and latency histogram get ``tenant`` and
``label_set`` labels: one series per tenant and set, so mind the cardinality).

The recording functions (``batch_done``, ``encode_done``, ``delivery_done``, ``label_index_built``,
``job_failed``) do nothing until ``configure`` has run in the process, so library use and tests that do
not care stay free of global state.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

P = ParamSpec("P")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ENCODE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
FAILURE_REASONS = ("invalid_message", "unknown_tenant", "unknown_label_set", "internal_error")


@dataclass
class WorkerMetrics:
    """The worker's metric objects, registered in one registry."""

    jobs: Counter
    latency: Histogram
    batch_size: Histogram
    encode: Histogram
    repeats: Counter
    deliveries: Counter
    label_index: Counter
    label_index_seconds: Histogram
    spilled: Counter
    bulk_ended: Counter
    per_tenant: bool


_metrics: WorkerMetrics | None = None


def configure(*, per_tenant: bool = False, registry: CollectorRegistry = REGISTRY) -> WorkerMetrics:
    """Create this process's worker metrics (once; later calls return the first ones)."""
    global _metrics
    if _metrics is None:
        _metrics = _create(per_tenant=per_tenant, registry=registry)
    return _metrics


def reset() -> None:
    """Forget the configured metrics (tests that configure their own registry)."""
    global _metrics
    _metrics = None


def _create(*, per_tenant: bool, registry: CollectorRegistry) -> WorkerMetrics:
    tenant_labels = ["tenant", "label_set"] if per_tenant else []
    return WorkerMetrics(
        jobs=Counter(
            "labelwise_worker_jobs",
            "Jobs a worker finished, by status (done, failed) and reason (chosen, abstained, "
            + ", ".join(FAILURE_REASONS)
            + ").",
            ["status", "reason", *tenant_labels],
            registry=registry,
        ),
        latency=Histogram(
            "labelwise_worker_job_latency_seconds",
            "From the job's creation (its enqueue by the API or CLI; for a message another app published, the "
            "worker's first sight of it) to the commit of its result.",
            tenant_labels,
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        batch_size=Histogram(
            "labelwise_worker_batch_size", "Messages per batch.", buckets=BATCH_BUCKETS, registry=registry
        ),
        encode=Histogram(
            "labelwise_worker_encode_seconds",
            "Seconds one batch's texts took to encode (one model call).",
            buckets=ENCODE_BUCKETS_S,
            registry=registry,
        ),
        repeats=Counter(
            "labelwise_worker_repeated_messages",
            "Messages whose job was already finished (a redelivery or a repeated idempotency key).",
            registry=registry,
        ),
        deliveries=Counter(
            "labelwise_worker_deliveries",
            "Delivery attempts by integration kind and resulting status (delivered, retrying, dead).",
            ["kind", "status"],
            registry=registry,
        ),
        label_index=Counter(
            "labelwise_worker_label_index_builds",
            "Label indexes built: 'initial' from the label-set version, 'refined' from recent traffic.",
            ["kind"],
            registry=registry,
        ),
        label_index_seconds=Histogram(
            "labelwise_worker_label_index_build_seconds",
            "Seconds one label index took to build.",
            ["kind"],
            buckets=ENCODE_BUCKETS_S + (10, 30, 60),
            registry=registry,
        ),
        spilled=Counter(
            "labelwise_worker_spilled_messages",
            "Messages moved to the overflow lane because their tenant already had its share waiting in the "
            "worker (LABELWISE_TENANT_SHARE).",
            registry=registry,
        ),
        bulk_ended=Counter(
            "labelwise_worker_bulk_process_ended",
            "Bulk processes (LABELWISE_BULK_PROCESS) that ended while the worker ran: killed, out of memory, "
            "or a message that crashed the model; each is replaced.",
            registry=registry,
        ),
        per_tenant=per_tenant,
    )


def failure_reason(error: str | None) -> str:
    """The reason class of a failed job's error (one of FAILURE_REASONS)."""
    text = error or ""
    if text.startswith("unknown tenant"):
        return "unknown_tenant"
    if text.startswith(("unknown label set", "label set")):
        return "unknown_label_set"
    if text.startswith("internal error"):
        return "internal_error"
    return "invalid_message"


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Recording a metric must never fail the work it measures: log the error instead."""

    @functools.wraps(record)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception:
            log.exception("recording metric %s failed", record.__name__)

    return wrapper


@_never_raises
def batch_done(views: list[dict[str, Any]], *, started_at: dt.datetime) -> None:
    """A batch is committed: its size, and each job's outcome and latency.

    ``views`` are the batch's result views, one per message; a job finished before ``started_at``, or
    seen earlier in the batch, was a repeat."""
    m = _metrics
    if m is None:
        return
    m.batch_size.observe(len(views))
    now, seen = time.time(), set()
    for view in views:
        finished = view.get("finished_at")
        if view["job_id"] in seen or finished is None or dt.datetime.fromisoformat(finished) < started_at:
            m.repeats.inc()
            continue
        seen.add(view["job_id"])
        _job_done(m, view, now=now)


def _job_done(m: WorkerMetrics, view: dict[str, Any], *, now: float) -> None:
    if view["status"] == "done":
        reason = "abstained" if view.get("abstained") else "chosen"
    else:
        reason = failure_reason(view.get("error"))
    tenant = [str(view.get("tenant") or ""), str(view.get("label_set") or "")] if m.per_tenant else []
    m.jobs.labels(view["status"], reason, *tenant).inc()
    created = view.get("created_at")
    if created is not None:
        latency = m.latency.labels(*tenant) if m.per_tenant else m.latency
        latency.observe(max(0.0, now - dt.datetime.fromisoformat(created).timestamp()))


@_never_raises
def job_failed(reason: str) -> None:
    """A job failed outside a batch's commit (an unexpected error)."""
    m = _metrics
    if m is None:
        return
    labels = [reason, "", ""] if m.per_tenant else [reason]
    m.jobs.labels("failed", *labels).inc()


@_never_raises
def encode_done(seconds: float) -> None:
    """One batch's texts were encoded in ``seconds``."""
    if _metrics is not None:
        _metrics.encode.observe(seconds)


@_never_raises
def spilled(count: int = 1) -> None:
    """``count`` messages were moved to the overflow lane."""
    if _metrics is not None:
        _metrics.spilled.inc(count)


@_never_raises
def bulk_process_ended() -> None:
    """The worker's bulk process ended while the worker ran."""
    if _metrics is not None:
        _metrics.bulk_ended.inc()


@_never_raises
def delivery_done(kind: str, status: str) -> None:
    """One delivery attempt ended with ``status`` (delivered, retrying, dead)."""
    if _metrics is not None:
        _metrics.deliveries.labels(kind, status).inc()


@_never_raises
def label_index_built(*, refined: bool, seconds: float) -> None:
    """A label index was built (from the version alone, or refined from traffic)."""
    if _metrics is not None:
        kind = "refined" if refined else "initial"
        _metrics.label_index.labels(kind).inc()
        _metrics.label_index_seconds.labels(kind).observe(seconds)


class QueueDepth(Collector):
    """``labelwise_queue_messages{queue}``: messages waiting in each queue, asked of the broker at scrape
    time; ``labelwise_broker_up`` is 0 when the broker did not answer."""

    def __init__(self, celery: Any, queues: Iterable[str]) -> None:
        self.celery, self.queues = celery, list(queues)

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("labelwise_queue_messages", "Messages waiting in the queue.", labels=["queue"])
        up = GaugeMetricFamily("labelwise_broker_up", "1 when the broker answered the queue-depth query.")
        try:
            for queue, count in self._depths():
                depth.add_metric([queue], count)
            up.add_metric([], 1)
        except Exception as e:  # a scrape must not fail because the broker is down; the gauge says so
            log.warning("queue depth: broker did not answer: %s: %s", type(e).__name__, e)
            up.add_metric([], 0)
        yield depth
        yield up

    def _depths(self) -> Iterator[tuple[str, int]]:
        from kombu.exceptions import ChannelError

        with self.celery.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            for queue in self.queues:
                channel = conn.channel()
                try:
                    yield queue, int(channel.queue_declare(queue=queue, passive=True).message_count)
                except ChannelError:  # not declared yet (or an empty Redis list): nothing waits in it
                    yield queue, 0
                finally:
                    channel.close()


def serving_registry(celery: Any, queues: Iterable[str]) -> CollectorRegistry:
    """The registry a metrics endpoint serves: this process's metrics, or in multiprocess mode the sum
    over every process writing to ``PROMETHEUS_MULTIPROC_DIR``; plus the queue depth."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    registry.register(QueueDepth(celery, queues))
    return registry


def serve(port: int, *, host: str, celery: Any, queues: Iterable[str]) -> Any:
    """Serve ``/metrics`` on host:port in a background thread; returns the server."""
    server, _thread = start_http_server(port, addr=host, registry=serving_registry(celery, queues))
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return server
