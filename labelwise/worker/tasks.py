"""Thin Celery tasks: take plain JSON, call one pipeline function, map errors to retry or fail."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from celery import Celery, Task
from celery.signals import after_setup_logger, after_setup_task_logger, worker_init, worker_ready, worker_shutdown

from labelwise import logs, pipeline
from labelwise.errors import RetryableError
from labelwise.pipeline.common import backoff_s
from labelwise.settings import Settings
from labelwise.worker import metrics as worker_metrics
from labelwise.worker.app import CLASSIFY_TASK, DELIVER_TASK
from labelwise.worker.heartbeat import Heartbeat
from labelwise.worker.resources import Resources, build_resources

log = logging.getLogger(__name__)

_resources: Resources | None = None
_heartbeat: Heartbeat | None = None
_lock = threading.Lock()


def resources(settings: Settings) -> Resources:
    """This process's resources, built on first use."""
    global _resources
    with _lock:
        if _resources is None:
            _resources = build_resources(settings)
        return _resources


def register(app: Celery, settings: Settings) -> None:
    """Register labelwise's tasks on ``app``."""

    @app.task(name=CLASSIFY_TASK, bind=True, max_retries=settings.db_retry_max)
    def classify(self: Task, *args: Any, **kwargs: Any) -> None:
        res = resources(settings)
        task_id, started = self.request.id, time.perf_counter()
        try:
            done = res.batcher.submit(pipeline.Message(task_id, kwargs, args))
        except RetryableError as e:
            raise _retry(self, e, cap_s=settings.db_retry_backoff_max_s) from e
        except Exception as e:
            log.exception("job %s: unexpected error", task_id, extra={"job_id": task_id})
            pipeline.fail_job(res.sessions, job_id=task_id, error=f"internal error: {type(e).__name__}: {e}")
            worker_metrics.job_failed("internal_error")
            return
        view = done.view
        fields = {k: view[k] for k in ("job_id", "tenant", "label_set", "status")}
        log.info(
            "job %s: %s %s",
            task_id,
            view["status"],
            view["chosen"] or view["error"] or "",
            extra={**fields, "duration_s": time.perf_counter() - started},
        )
        for delivery_id in done.deliveries:  # only now: the job and its deliveries are committed
            deliver.apply_async(kwargs={"delivery_id": delivery_id}, queue=settings.queue)

    @app.task(name=DELIVER_TASK, bind=True, max_retries=None)
    def deliver(self: Task, delivery_id: str) -> None:
        res = resources(settings)
        started = time.perf_counter()
        try:
            status, wait_s, error, kind = pipeline.deliver(
                res.sessions,
                res.box,
                res.http,
                delivery_id,
                max_attempts=settings.delivery_max_attempts,
                delay_s=lambda attempt, retry_after_s: backoff_s(
                    attempt,
                    base_s=settings.delivery_backoff_base_s,
                    cap_s=settings.delivery_backoff_max_s,
                    at_least_s=retry_after_s,
                ),
            )
        except RetryableError as e:
            raise _retry(self, e, cap_s=settings.db_retry_backoff_max_s) from e
        worker_metrics.delivery_done(kind, status)
        retry = f"; next attempt in {wait_s:.1f}s" if wait_s else ""
        fields = {"delivery_id": delivery_id, "integration": kind, "status": status}
        log.info(
            "delivery %s: %s%s%s",
            delivery_id,
            status,
            f" ({error})" if error else "",
            retry,
            extra={**fields, "duration_s": time.perf_counter() - started},
        )
        if status == "retrying":
            raise self.retry(countdown=wait_s)

    @worker_init.connect(weak=False)
    def _load_model(**_: Any) -> None:
        # Before the consumer starts: a worker takes messages only once it can classify them.
        worker_metrics.configure(per_tenant=settings.metrics_tenant_labels)
        resources(settings).classifier.encoder.encode(["warm-up"])

    register_operations(settings)


def register_operations(settings: Settings) -> None:
    """Heartbeat while the consumer runs, and the log format on Celery's loggers."""

    @worker_ready.connect(weak=False, dispatch_uid="labelwise-heartbeat-start")
    def _start_heartbeat(sender: Any = None, **_: Any) -> None:
        global _heartbeat
        res = resources(settings)
        host = socket.gethostname()
        name = f"{getattr(sender, 'hostname', None) or host}/{os.getpid()}"
        _heartbeat = Heartbeat(
            res.sessions,
            name=name,
            host=host,
            pid=os.getpid(),
            interval_s=settings.worker_heartbeat_s,
            messages=lambda: res.batcher.items,
        )
        _heartbeat.start()

    @worker_shutdown.connect(weak=False, dispatch_uid="labelwise-heartbeat-stop")
    def _stop_heartbeat(**_: Any) -> None:
        if _heartbeat is not None:
            _heartbeat.stop()

    @after_setup_logger.connect(weak=False, dispatch_uid="labelwise-log-format")
    @after_setup_task_logger.connect(weak=False, dispatch_uid="labelwise-task-log-format")
    def _log_format(logger: logging.Logger, **_: Any) -> None:
        logs.use_format(logger, settings.log_format)


def _retry(task: Task, e: RetryableError, *, cap_s: float) -> Exception:
    """Celery's retry with exponential back-off and jitter, for a passing outage."""
    countdown = backoff_s(task.request.retries + 1, base_s=1.0, cap_s=cap_s)
    log.warning("task %s: %s; retry %d in %.1fs", task.request.id, e.message, task.request.retries + 1, countdown)
    return task.retry(exc=e, countdown=countdown)
