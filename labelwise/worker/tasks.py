"""Thin Celery tasks: take plain JSON, call one pipeline function, map errors to retry or fail."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import worker_init, worker_ready, worker_shutdown

from labelwise import pipeline
from labelwise.errors import RetryableError
from labelwise.models import integrations
from labelwise.models.tables import utcnow
from labelwise.pipeline.common import backoff_s
from labelwise.settings import Settings
from labelwise.worker.app import CLASSIFY_TASK, DELIVER_TASK
from labelwise.worker.reconciler import Reconciler
from labelwise.worker.resources import Publisher, Resources, build_resources

log = logging.getLogger(__name__)

_resources: Resources | None = None
_lock = threading.Lock()


def resources(settings: Settings, publisher: Publisher) -> Resources:
    """This process's resources, built on first use."""
    global _resources
    with _lock:
        if _resources is None:
            _resources = build_resources(settings, publisher)
        return _resources


def register(app: Celery, settings: Settings) -> None:
    """Register labelwise's tasks on ``app``, and the reconciler that runs beside them."""
    publisher = Publisher(app, queue=settings.queue)

    @app.task(name=CLASSIFY_TASK, bind=True, max_retries=settings.db_retry_max)
    def classify(self: Task, *args: Any, **kwargs: Any) -> None:
        res = resources(settings, publisher)
        task_id = self.request.id
        try:
            done = res.batcher.submit(pipeline.Message(task_id, kwargs, args))
        except RetryableError as e:
            raise _retry(self, e, cap_s=settings.db_retry_backoff_max_s) from e
        view = done.view
        log.info("job %s: %s %s", task_id, view["status"], view["chosen"] or view["error"] or "")

    @app.task(name=DELIVER_TASK, bind=True, max_retries=None)
    def deliver(self: Task, delivery_id: str) -> None:
        res = resources(settings, publisher)
        try:
            attempt = pipeline.deliver(
                res.sessions,
                res.box,
                res.http,
                delivery_id,
                max_attempts=settings.delivery_max_attempts,
                delay_s=lambda n, retry_after_s: backoff_s(
                    n,
                    base_s=settings.delivery_backoff_base_s,
                    cap_s=settings.delivery_backoff_max_s,
                    at_least_s=min(retry_after_s, settings.delivery_backoff_max_s) if retry_after_s else None,
                ),
                lease_s=max(60.0, 10 * settings.outbound_timeout_s),
            )
        except RetryableError as e:
            raise _retry(self, e, cap_s=settings.db_retry_backoff_max_s) from e
        if not attempt.attempted:
            log.debug("delivery %s: nothing to do (%s)", delivery_id, attempt.error)
            return
        retry = f"; next attempt in {attempt.wait_s:.1f}s" if attempt.wait_s else ""
        log.info(
            "delivery %s: %s%s%s", delivery_id, attempt.status, f" ({attempt.error})" if attempt.error else "", retry
        )
        if (
            attempt.status == "retrying"
            and attempt.wait_s is not None
            and attempt.wait_s <= settings.reconcile_interval_s
        ):
            _publish_retry(res, publisher, delivery_id, attempt.wait_s)  # longer waits: the reconciler

    reconciler = Reconciler(settings, publisher)

    @worker_init.connect(weak=False)
    def _load_model(**_: Any) -> None:
        # Before the consumer starts: a worker takes messages only once it can classify them.
        resources(settings, publisher).classifier.encoder.encode(["warm-up"])

    @worker_ready.connect(weak=False)
    def _start_reconciler(**_: Any) -> None:
        reconciler.start(resources(settings, publisher).sessions)

    @worker_shutdown.connect(weak=False)
    def _stop_reconciler(**_: Any) -> None:
        reconciler.stop()


def _publish_retry(res: Resources, publisher: Publisher, delivery_id: str, wait_s: float) -> None:
    """Publish the next attempt of a delivery due soon; if that fails, the reconciler publishes it."""
    try:
        publisher.delivery(delivery_id, countdown=wait_s)
        with res.sessions.begin() as session:
            integrations.mark_deliveries_enqueued(session, [delivery_id], at=utcnow() + dt.timedelta(seconds=wait_s))
    except Exception as e:
        log.warning("delivery %s: could not publish its retry (%s); the reconciler will", delivery_id, e)


def _retry(task: Task, e: RetryableError, *, cap_s: float) -> Exception:
    """Celery's retry with exponential back-off and jitter, for a passing outage."""
    countdown = backoff_s(task.request.retries + 1, base_s=1.0, cap_s=cap_s)
    log.warning("task %s: %s; retry %d in %.1fs", task.request.id, e.message, task.request.retries + 1, countdown)
    return task.retry(exc=e, countdown=countdown)
