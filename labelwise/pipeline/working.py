"""The worker's use case: a batch of labelwise.classify messages in, stored results and deliveries out.

Messages that arrive together are claimed in one transaction (``claiming``), encoded in one model call
across tenants and label sets, scored per label set, and stored in one transaction (``storing``).

One bad message never costs its batch-mates: when a batch fails for any reason other than a passing
outage (database or broker: the whole batch is retried), its messages are classified again one by one,
and a message that fails alone is recorded as a failed job with its tenant, key and reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.base import Encoder
from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelIndex
from labelwise.classify.scoring import Scored, score_documents
from labelwise.classify.stored import StoredEncoder
from labelwise.errors import RetryableError
from labelwise.messages import MAX_METADATA_BYTES
from labelwise.models import jobs
from labelwise.models.tables import Job
from labelwise.pipeline import claiming
from labelwise.pipeline.claiming import DEFAULT_MAX_ATTEMPTS, Claimed, Conflict, Elsewhere, Limits, Message, Ref
from labelwise.pipeline.common import database_errors
from labelwise.pipeline.storing import Classified, rows_by, store_batch
from labelwise.pipeline.traffic import Refiner, document_loader
from labelwise.pipeline.views import job_view
from labelwise.priority import TURNS

log = logging.getLogger(__name__)
__all__ = ["Classified", "Limits", "Message", "classify_batch", "classify_message", "fail_job"]


def classify_batch(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    messages: list[Message],
    *,
    max_text_chars: int,
    max_metadata_bytes: int = MAX_METADATA_BYTES,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    refiner: Refiner | None = None,
    route: Callable[[Ref], Ref] | None = None,
) -> list[Classified | Exception]:
    """Classify a batch; one outcome per message, in order: its Classified (with the deliveries to publish
    after commit), or the exception its task should see (a passing outage: retry it).

    Bad input ends as a ``failed`` job. A job that is already finished (a redelivered message, or a
    repeated idempotency key) comes back as it is, never classified twice, with its still-pending
    deliveries. With a ``refiner``, the messages' vectors are kept as their label set's traffic.
    Raises DatabaseUnavailableError (retryable) when the database cannot be reached at all.
    """
    limits = Limits(max_text_chars, max_metadata_bytes, max_attempts, route)
    try:
        return list(_classify(sessions, classifier, messages, limits=limits, refiner=refiner))
    except RetryableError:
        raise
    except Exception as e:
        if len(messages) == 1:
            return [_failed(sessions, messages[0], e)]
        log.warning(
            "a batch of %d failed (%s: %s); classifying its messages one by one", len(messages), type(e).__name__, e
        )
    return [_alone(sessions, classifier, m, limits=limits, refiner=refiner) for m in messages]


def _alone(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    message: Message,
    *,
    limits: Limits,
    refiner: Refiner | None,
) -> Classified | Exception:
    try:
        return _classify(sessions, classifier, [message], limits=limits, refiner=refiner)[0]
    except RetryableError as e:
        return e
    except Exception as e:
        return _failed(sessions, message, e)


def _failed(sessions: sessionmaker[Session], message: Message, error: Exception) -> Classified | Exception:
    """Record the message as failed by ``error``; the exception itself if even that cannot be written."""
    log.error("job %s: failed: %s: %s", message.task_id, type(error).__name__, error, exc_info=error)
    reason = f"internal error: {type(error).__name__}: {error}"[:2000]
    try:
        with database_errors(), sessions.begin() as session:
            return Classified(job_view(claiming.fail_message(session, message, error=reason)), [])
    except Exception as e:
        return e


def _classify(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    messages: list[Message],
    *,
    limits: Limits,
    refiner: Refiner | None,
) -> list[Classified | Exception]:
    try:
        claimed, finished = claiming.claim_batch(sessions, messages, limits=limits, bulk=True)
    except Conflict:  # another worker inserted one of these jobs (or keys) meanwhile: one by one
        claimed, finished = claiming.claim_batch(sessions, messages, limits=limits, bulk=False)
    results: list[Classified | Exception | None] = [None] * len(messages)
    todo: dict[int, Claimed] = {}
    first_of: dict[str, int] = {}
    job_ids = [_job_id(c) for c in claimed]
    for i, claim in enumerate(claimed):
        if job_ids[i] in first_of:  # the same job twice in one batch: classify it once
            continue
        first_of[job_ids[i]] = i
        if isinstance(claim, Elsewhere):  # left queued for the main lane (labelwise.worker.handling)
            results[i] = claim
        elif not isinstance(claim, Claimed):
            results[i] = Classified(job_view(claim), finished[claim.id])
        else:
            todo[i] = claim
    for group in _isolating_suspects(todo):
        if len(group) == 1 and (only := next(iter(group.values()))).suspect:
            with database_errors(), sessions.begin() as session:  # counted before it can kill the worker
                jobs.count_attempt(session, only.job.id)
        TURNS.checkpoint()  # a light tenant's batch goes first (labelwise.priority)
        with database_errors():  # label vectors of a version not cached yet come from SQL
            scored, vectors = _score(classifier, list(group.values()), sessions=sessions, refiner=refiner)
        TURNS.checkpoint()
        with database_errors(), sessions.begin() as session, session.no_autoflush:
            stored = store_batch(session, classifier, group, scored, vectors, refiner=refiner)
        for i, classified in stored.items():
            results[i] = classified
    return [_own_or_first(results, i, first_of[job_id]) for i, job_id in enumerate(job_ids)]


def _job_id(claim: Job | Claimed | Elsewhere) -> str:
    if isinstance(claim, Claimed):
        return claim.job.id
    return claim.job_id if isinstance(claim, Elsewhere) else claim.id


def _isolating_suspects(todo: dict[int, Claimed]) -> list[dict[int, Claimed]]:
    """The batch's first-time jobs together, then each job claimed before (its worker died while classifying
    it: it may be the message that kills workers) alone, each committed on its own, fewest attempts first.
    A suspect's attempt is counted only when it is tried alone, so a message that kills its worker each
    time reaches ``max_attempts`` and fails, and its batch-mates, tried alone before it, are done."""
    fresh = {i: c for i, c in todo.items() if not c.suspect}
    suspects = sorted((c.job.attempts, i) for i, c in todo.items() if c.suspect)
    return ([fresh] if fresh else []) + [{i: todo[i]} for _, i in suspects]


def _own_or_first(results: list[Classified | Exception | None], i: int, first: int) -> Classified | Exception:
    """A repeat within the batch shares its first occurrence's view (its deliveries are enqueued once)."""
    own = results[i]
    if own is not None:
        return own
    shared = results[first]
    assert shared is not None
    return shared if isinstance(shared, Exception) else Classified(shared.view, [])


def _score(
    classifier: Classifier, todo: list[Claimed], *, sessions: sessionmaker[Session], refiner: Refiner | None
) -> tuple[list[Scored], np.ndarray]:
    """Encode every window of every text in one call, then score each text against its own label set;
    the vectors returned (kept as traffic) are one per text, the mean of its windows.

    Label vectors come from the in-process cache, else are built (label texts' embeddings from SQL
    when stored, else from the model); with a refiner, from the set's traffic as well.
    """
    encoded = classifier.encode([c.text for c in todo])
    label_encoder = StoredEncoder(classifier.encoder, sessions)
    out: list[Scored | None] = [None] * len(todo)
    for version_id, rows in rows_by(todo, lambda c: c.version_id).items():
        first = todo[rows[0]]
        index = version_index(
            classifier,
            label_encoder,
            sessions=sessions,
            refiner=refiner,
            version_id=version_id,
            label_set_id=first.label_set_id,
            seen=first.seen,
        )
        scored = score_documents(index, encoded.rows(rows), top_k=classifier.top_k)
        for row, outcome in zip(rows, scored, strict=True):
            out[row] = outcome
    return [x for x in out if x is not None], encoded.text_vectors()


def classify_message(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    *,
    task_id: str,
    kwargs: Any,
    args: tuple[Any, ...] = (),
    max_text_chars: int,
) -> Classified:
    """One message: a batch of one. Raises the exception its task would see."""
    [outcome] = classify_batch(sessions, classifier, [Message(task_id, kwargs, args)], max_text_chars=max_text_chars)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def version_index(
    classifier: Classifier,
    label_encoder: Encoder,
    *,
    sessions: sessionmaker[Session],
    refiner: Refiner | None,
    version_id: int,
    label_set_id: int,
    seen: int,
) -> LabelIndex:
    """The label vectors a message of this stored version is scored with (production and previews alike):
    the refiner's freshest index when traffic is kept, else the cached one, built on first use."""
    load_doc = document_loader(sessions, version_id)
    if refiner is not None:
        return refiner.index_for(
            version_id=version_id, label_set_id=label_set_id, seen=seen, load_doc=load_doc, encoder=label_encoder
        )
    return classifier.cache.peek(version_id, classifier.model_id) or classifier.cache.get_or_build(
        version_id, load_doc(), label_encoder
    )


def fail_job(sessions: sessionmaker[Session], *, job_id: str, error: str) -> None:
    """Mark a job failed after an unexpected error, if it exists and is not done."""
    with sessions.begin() as session:
        jobs.write_lock(session)
        job = jobs.find_job(session, job_id, lock=True)
        if job is not None and job.status != "done":
            jobs.mark_failed(job, error=error)
