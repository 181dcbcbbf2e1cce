"""Thin Celery tasks: take plain JSON, call one pipeline function, map errors to retry or fail."""

from __future__ import annotations

import datetime as dt
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
from labelwise.models import integrations
from labelwise.models.tables import utcnow
from labelwise.pipeline.common import backoff_s
from labelwise.settings import Settings
from labelwise.worker import metrics as worker_metrics
from labelwise.worker import previews
from labelwise.worker.app import CLASSIFY_TASK, DELIVER_TASK
from labelwise.worker.consumer import BatchTask, Inbound
from labelwise.worker.heartbeat import Heartbeat
from labelwise.worker.model_calls import MODEL_CALLS
from labelwise.worker.purger import Purger
from labelwise.worker.reconciler import Reconciler
from labelwise.worker.resources import Publisher, Resources, build_resources

log = logging.getLogger(__name__)
MODEL_CALLS_STOP_S = 30.0  # how long a stopping worker waits for a running model call (a chunk, a batch)

_resources: Resources | None = None
_heartbeat: Heartbeat | None = None
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

    @app.task(name=CLASSIFY_TASK, bind=True, base=BatchTask)
    def classify(self: Task, *args: Any, **kwargs: Any) -> None:
        """Runs only when called directly: a worker's consumer hands these messages to the batcher
        (labelwise.worker.consumer), which classifies them in batches and acknowledges them."""
        res = resources(settings, publisher)
        [outcome] = res.handler([Inbound.direct(self.request.id or pipeline.new_job_id(), args, kwargs)])
        if isinstance(outcome, Exception):
            raise outcome

    @app.task(name=DELIVER_TASK, bind=True, max_retries=None)
    def deliver(self: Task, delivery_id: str) -> None:
        res = resources(settings, publisher)
        started = time.perf_counter()
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
        worker_metrics.delivery_done(attempt.kind, attempt.status)
        retry = f"; next attempt in {attempt.wait_s:.1f}s" if attempt.wait_s else ""
        fields = {"delivery_id": delivery_id, "integration": attempt.kind, "status": attempt.status}
        log.info(
            "delivery %s: %s%s%s",
            delivery_id,
            attempt.status,
            f" ({attempt.error})" if attempt.error else "",
            retry,
            extra={**fields, "duration_s": time.perf_counter() - started},
        )
        if (
            attempt.status == "retrying"
            and attempt.wait_s is not None
            and attempt.wait_s <= settings.reconcile_interval_s
        ):
            _publish_retry(res, publisher, delivery_id, attempt.wait_s)  # longer waits: the reconciler

    previews.register(app, settings, publisher)  # labelwise.preview, labelwise.evaluate (console and POST /v1/preview)

    @worker_init.connect(weak=False)
    def _load_model(**_: Any) -> None:
        # Before the consumer starts: a worker takes messages only once it can classify them.
        worker_metrics.configure(per_tenant=settings.metrics_tenant_labels)
        resources(settings, publisher).classifier.encoder.encode(["warm-up"])

    register_operations(settings, publisher)


def register_operations(settings: Settings, publisher: Publisher) -> None:
    """While the consumer runs: the reconciler, the retention purge and the heartbeat; and the log format on
    Celery's loggers."""
    reconciler = Reconciler(settings, publisher)
    purger = Purger(settings)

    @worker_ready.connect(weak=False, dispatch_uid="labelwise-worker-ready")
    def _start(sender: Any = None, **_: Any) -> None:
        global _heartbeat
        res = resources(settings, publisher)
        reconciler.start(res.sessions)
        purger.start(res.sessions)
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

    @worker_shutdown.connect(weak=False, dispatch_uid="labelwise-worker-shutdown")
    def _stop(**_: Any) -> None:
        if _resources is not None:
            _resources.handler.stopping.set()  # a batch waiting out an outage gives its messages back
            if _resources.handler.bulk is not None:
                _resources.handler.bulk.stop()  # once the batch it holds is done
            if not MODEL_CALLS.close(MODEL_CALLS_STOP_S):  # none may run while the interpreter finalizes
                log.warning("a model call still ran %.0fs into the stop; the process may abort", MODEL_CALLS_STOP_S)
        reconciler.stop()
        purger.stop()
        if _heartbeat is not None:
            _heartbeat.stop()

    @after_setup_logger.connect(weak=False, dispatch_uid="labelwise-log-format")
    @after_setup_task_logger.connect(weak=False, dispatch_uid="labelwise-task-log-format")
    def _log_format(logger: logging.Logger, **_: Any) -> None:
        logs.use_format(logger, settings.log_format)


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
