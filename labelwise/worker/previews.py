"""Celery tasks of the console and the preview API: ``labelwise.preview`` and ``labelwise.evaluate``.

Thin, as the other tasks: an id in, one pipeline call, the result in SQL (no result backend). They
use this process's classifier (the same encoder and stored label-text embeddings as production
messages) with a small cache of their own for drafts, so typing in an editor never evicts the label
vectors production messages use.
"""

from __future__ import annotations

import logging

from celery import Celery

from labelwise.classify.labels import LabelCache
from labelwise.errors import RetryableError
from labelwise.pipeline.evaluating import run_evaluation
from labelwise.pipeline.previewing import run_preview
from labelwise.settings import Settings
from labelwise.worker.app import CONFIRM_TIMEOUT_S
from labelwise.worker.resources import Publisher

log = logging.getLogger(__name__)

PREVIEW_TASK = "labelwise.preview"
EVALUATE_TASK = "labelwise.evaluate"
DRAFT_CACHE_SIZE = 16

_drafts = LabelCache(DRAFT_CACHE_SIZE)


def register(app: Celery, settings: Settings, publisher: Publisher) -> None:
    """Register the preview and evaluation tasks on ``app``."""
    from labelwise.worker.tasks import resources

    @app.task(name=PREVIEW_TASK, max_retries=3, default_retry_delay=1)
    def preview(preview_id: str) -> None:
        res = resources(settings, publisher)
        try:
            status = run_preview(res.sessions, res.classifier, _drafts, preview_id=preview_id, refiner=res.refiner)
        except RetryableError as e:
            raise preview.retry(exc=e) from e
        log.info("preview %s: %s", preview_id, status)

    @app.task(name=EVALUATE_TASK, max_retries=3, default_retry_delay=5)
    def evaluation(evaluation_id: str) -> None:
        res = resources(settings, publisher)
        try:
            status = run_evaluation(res.sessions, res.classifier, _drafts, evaluation_id=evaluation_id)
        except RetryableError as e:
            raise evaluation.retry(exc=e) from e
        log.info("evaluation %s: %s", evaluation_id, status)


def enqueue_preview(app: Celery, preview_id: str, *, queue: str) -> None:
    """Publish after the preview row is committed."""
    app.send_task(PREVIEW_TASK, kwargs={"preview_id": preview_id}, queue=queue, confirm_timeout=CONFIRM_TIMEOUT_S)


def enqueue_evaluation(app: Celery, evaluation_id: str, *, queue: str) -> None:
    """Publish after the evaluation row is committed."""
    app.send_task(
        EVALUATE_TASK, kwargs={"evaluation_id": evaluation_id}, queue=queue, confirm_timeout=CONFIRM_TIMEOUT_S
    )
