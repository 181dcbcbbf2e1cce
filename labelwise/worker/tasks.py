"""Thin Celery tasks: take plain JSON, call one pipeline function, map errors to retry or fail."""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import worker_init

from labelwise import pipeline
from labelwise.errors import RetryableError
from labelwise.pipeline.common import backoff_s
from labelwise.settings import Settings
from labelwise.worker import previews
from labelwise.worker.app import CLASSIFY_TASK, DELIVER_TASK
from labelwise.worker.resources import Resources, build_resources

log = logging.getLogger(__name__)

_resources: Resources | None = None
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
        task_id = self.request.id
        try:
            done = res.batcher.submit(pipeline.Message(task_id, kwargs, args))
        except RetryableError as e:
            raise _retry(self, e, cap_s=settings.db_retry_backoff_max_s) from e
        except Exception as e:
            log.exception("job %s: unexpected error", task_id)
            pipeline.fail_job(res.sessions, job_id=task_id, error=f"internal error: {type(e).__name__}: {e}")
            return
        view = done.view
        log.info("job %s: %s %s", task_id, view["status"], view["chosen"] or view["error"] or "")
        for delivery_id in done.deliveries:  # only now: the job and its deliveries are committed
            deliver.apply_async(kwargs={"delivery_id": delivery_id}, queue=settings.queue)

    @app.task(name=DELIVER_TASK, bind=True, max_retries=None)
    def deliver(self: Task, delivery_id: str) -> None:
        res = resources(settings)
        try:
            status, wait_s, error = pipeline.deliver(
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
        retry = f"; next attempt in {wait_s:.1f}s" if wait_s else ""
        log.info("delivery %s: %s%s%s", delivery_id, status, f" ({error})" if error else "", retry)
        if status == "retrying":
            raise self.retry(countdown=wait_s)

    previews.register(app, settings)  # labelwise.preview, labelwise.evaluate (console and POST /v1/preview)

    @worker_init.connect(weak=False)
    def _load_model(**_: Any) -> None:
        # Before the consumer starts: a worker takes messages only once it can classify them.
        resources(settings).classifier.encoder.encode(["warm-up"])


def _retry(task: Task, e: RetryableError, *, cap_s: float) -> Exception:
    """Celery's retry with exponential back-off and jitter, for a passing outage."""
    countdown = backoff_s(task.request.retries + 1, base_s=1.0, cap_s=cap_s)
    log.warning("task %s: %s; retry %d in %.1fs", task.request.id, e.message, task.request.retries + 1, countdown)
    return task.retry(exc=e, countdown=countdown)
