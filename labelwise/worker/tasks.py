"""Thin Celery tasks: take plain JSON, call one pipeline function, map errors to retry or fail."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init

from labelwise import pipeline
from labelwise.errors import RetryableError
from labelwise.settings import Settings
from labelwise.worker.app import CLASSIFY_TASK
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
            view = pipeline.classify_message(
                res.sessions,
                res.classifier,
                task_id=task_id,
                kwargs=kwargs,
                args=args,
                max_text_chars=settings.max_text_chars,
            )
        except RetryableError as e:
            countdown = backoff_s(self.request.retries, cap_s=settings.db_retry_backoff_max_s)
            log.warning("job %s: %s; retry %d in %.1fs", task_id, e.message, self.request.retries + 1, countdown)
            raise self.retry(exc=e, countdown=countdown) from e
        except Exception as e:
            log.exception("job %s: unexpected error", task_id)
            pipeline.fail_job(res.sessions, job_id=task_id, error=f"internal error: {type(e).__name__}: {e}")
            return
        log.info("job %s: %s %s", task_id, view["status"], view["chosen"] or view["error"] or "")

    @worker_process_init.connect(weak=False)
    def _init_child(**_: Any) -> None:
        # A forked child must not reuse the parent's connections; the model loads in the
        # background so the first message does not pay for it and init stays under Celery's 4 s.
        global _resources
        if _resources is not None:
            _resources.engine.dispose(close=False)
        res = resources(settings)
        threading.Thread(target=res.classifier.encoder.encode, args=(["warm-up"],), daemon=True).start()


def backoff_s(retries: int, *, cap_s: float) -> float:
    """Exponential back-off with full jitter: uniform in [0.5, 1] x min(cap, 2 ** retries)."""
    base = min(cap_s, 2.0**retries)
    return base * random.uniform(0.5, 1.0)
