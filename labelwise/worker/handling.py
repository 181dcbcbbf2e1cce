"""What the batcher does with a batch of labelwise.classify messages: decode them, classify and commit,
publish the deliveries, acknowledge the messages; through a passing outage (the database is down) the
batch is held, unacknowledged, and tried again with back-off."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.classifier import Classifier
from labelwise.errors import RetryableError
from labelwise.pipeline.claiming import Elsewhere
from labelwise.pipeline.common import backoff_s
from labelwise.pipeline.label_vectors import LabelReadiness
from labelwise.pipeline.traffic import Refiner
from labelwise.pipeline.working import Classified, Message, classify_batch
from labelwise.priority import TURNS
from labelwise.settings import Settings
from labelwise.worker import metrics as worker_metrics
from labelwise.worker.bulk import BulkProcess
from labelwise.worker.consumer import Inbound, acknowledge, requeue

log = logging.getLogger(__name__)


class BatchHandler:
    """The batcher's ``handle`` for labelwise.classify messages (one instance per worker process)."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        classifier: Classifier,
        refiner: Refiner | None,
        publish_deliveries: Any,
        readiness: LabelReadiness | None = None,
        bulk: BulkProcess | None = None,
    ) -> None:
        self.settings, self.sessions, self.classifier, self.refiner = settings, sessions, classifier, refiner
        self.publish_deliveries = publish_deliveries
        self.readiness = readiness
        self.bulk = bulk  # the main lane's batches go to it while it is ready (labelwise.worker.bulk)
        # where a message the express lane leaves to the main lane goes (pipeline.claiming.Elsewhere): the
        # batcher's put, marking its tenant heavy for a while; unset, back to the broker
        self.to_main_lane: Callable[[Inbound], None] | None = None
        self._classify_here = classify_with(settings, sessions, classifier, refiner, readiness)
        self.stopping = threading.Event()  # set at shutdown: stop retrying, leave the rest to the broker

    def __call__(self, items: list[Inbound]) -> list[Classified | Exception]:
        """Classify a batch in this process (the express lane's, a direct call)."""
        return self._run(items, bulk=None)

    def main_lane(self, items: list[Inbound]) -> list[Classified | Exception]:
        """Classify a main-lane batch in the bulk process when it is ready, else in this process."""
        return self._run(items, bulk=self.bulk)

    def _run(self, items: list[Inbound], *, bulk: BulkProcess | None) -> list[Classified | Exception]:
        messages = [decode(item) for item in items]
        outcomes: list[Classified | Exception] = [RetryableError("not classified yet")] * len(items)
        pending, attempt = list(range(len(items))), 0
        while pending:
            retry = self._attempt(items, messages, pending, outcomes, bulk=bulk)
            if not retry:
                break
            attempt += 1
            if self.stopping.is_set() or (
                self.settings.db_retry_max is not None and attempt > self.settings.db_retry_max
            ):
                requeue([items[i] for i in retry])  # another worker, or this one later, tries them
                break
            wait_s = backoff_s(attempt, base_s=1.0, cap_s=self.settings.db_retry_backoff_max_s)
            log.warning(
                "%d messages wait out an outage (%s); retry %d in %.1fs",
                len(retry),
                outcomes[retry[0]],
                attempt,
                wait_s,
            )
            self.stopping.wait(wait_s)
            pending = retry
        return outcomes

    def _attempt(
        self,
        items: list[Inbound],
        messages: list[Message],
        pending: list[int],
        outcomes: list[Classified | Exception],
        *,
        bulk: BulkProcess | None = None,
    ) -> list[int]:
        """Classify the pending messages once; acknowledge those that ended; return the ones to retry."""
        started_at = dt.datetime.now(dt.UTC)
        batch = [messages[i] for i in pending]
        got = bulk.classify(batch) if bulk is not None else None  # None: no bulk process ready to take it
        if got is None:
            got = self._classify_here(batch)
        ended = [(i, o) for i, o in zip(pending, got, strict=True) if isinstance(o, Classified)]
        for i, outcome in zip(pending, got, strict=True):
            outcomes[i] = outcome
        elsewhere = [items[i] for i, o in zip(pending, got, strict=True) if isinstance(o, Elsewhere)]
        if elsewhere:
            self._leave(elsewhere)
        if ended:
            TURNS.checkpoint()  # a light tenant's batch goes first (labelwise.priority)
            views = [o.view for _, o in ended]
            self.publish_deliveries([d for _, o in ended for d in o.deliveries])
            worker_metrics.batch_done(views, started_at=started_at)
            acknowledge([items[i] for i, _ in ended], views, failed=lambda view: view["status"] == "failed")
            if log.isEnabledFor(logging.INFO):
                for i, view in zip((i for i, _ in ended), views, strict=True):
                    _log_done(items[i], view)
        return [i for i, o in zip(pending, got, strict=True) if not isinstance(o, Classified | Elsewhere)]

    def _leave(self, items: list[Inbound]) -> None:
        """Hand messages this lane left queued to the main lane (still unacknowledged: a crash redelivers)."""
        log.info("%d message(s) left to the main lane: their label set's first version is built there", len(items))
        if self.to_main_lane is None:
            requeue(items)
            return
        for item in items:
            self.to_main_lane(item)


def classify_with(
    settings: Settings,
    sessions: sessionmaker[Session],
    classifier: Classifier,
    refiner: Refiner | None,
    readiness: LabelReadiness | None,
) -> Callable[[list[Message]], list[Classified | Exception]]:
    """Classify a batch with these (``classify_batch``); a passing outage is every message's outcome."""

    def classify(messages: list[Message]) -> list[Classified | Exception]:
        try:
            return classify_batch(
                sessions,
                classifier,
                messages,
                max_text_chars=settings.max_text_chars,
                max_metadata_bytes=settings.max_metadata_bytes,
                max_attempts=settings.max_attempts,
                refiner=refiner,
                route=readiness.route if readiness is not None else None,
            )
        except RetryableError as e:
            return [e] * len(messages)

    return classify


def _log_done(item: Inbound, view: dict[str, Any]) -> None:
    fields = {k: view[k] for k in ("job_id", "tenant", "label_set", "status")}
    log.info(
        "job %s: %s %s",
        item.task_id,
        view["status"],
        view["chosen"] or view["error"] or "",
        extra={**fields, "task_id": item.task_id, "duration_s": time.time() - item.received_s},
    )


def decode(item: Inbound) -> Message:
    """The task's arguments (Celery message protocol 2, or 1); an undecodable body fails its job."""
    try:
        body = item.message.decode()
    except Exception as e:
        return Message(item.task_id, f"the message body cannot be decoded: {type(e).__name__}")
    if isinstance(body, dict) and ("args" in body or "kwargs" in body):  # protocol 1
        return Message(item.task_id, body.get("kwargs"), tuple(body.get("args") or ()))
    if isinstance(body, list | tuple) and len(body) >= 2:
        args, kwargs = body[0], body[1]
        return Message(item.task_id, kwargs, tuple(args) if isinstance(args, list | tuple) else (args,))
    return Message(item.task_id, body)
