"""The worker's use case: a batch of labelwise.classify messages in, stored results and deliveries out.

Messages that arrive together are claimed in one transaction, encoded in one model call (across
tenants and label sets), scored per label set, and stored in one transaction.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.base import Encoder
from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelIndex
from labelwise.classify.scoring import Scored, score
from labelwise.classify.stored import StoredEncoder
from labelwise.errors import InvalidInputError, NotFoundError
from labelwise.messages import ClassifyMessage, parse_message, sanitize
from labelwise.models import jobs, labelsets, tenants
from labelwise.models.tables import Integration, Job
from labelwise.pipeline.classifying import job_fields
from labelwise.pipeline.common import database_errors
from labelwise.pipeline.integrating import pending_deliveries, plan_deliveries
from labelwise.pipeline.traffic import Refiner, document_loader, record
from labelwise.pipeline.views import job_view, to_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """One ``labelwise.classify`` message as Celery hands it over."""

    task_id: str
    kwargs: Any
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Classified:
    view: dict[str, Any]
    deliveries: list[str]


@dataclass(frozen=True)
class _Claimed:
    """A job to classify (its row, detached once claimed), with the label-set version it uses."""

    job: Job
    text: str
    version_id: int
    version: int
    label_set_id: int
    seen: int


def classify_batch(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    messages: list[Message],
    *,
    max_text_chars: int,
    refiner: Refiner | None = None,
) -> list[Classified]:
    """Classify a batch; one Classified per message, in order, with the deliveries to enqueue after commit.

    Bad input ends as a ``failed`` job. A job that is already finished (a redelivered message, or a
    repeated idempotency key) comes back as it is, never classified twice, with its still-pending
    deliveries, so a worker that died between commit and enqueue loses none. With a ``refiner``, the
    messages' vectors are kept as their label set's traffic and label vectors refined from it.
    Raises DatabaseUnavailableError (retryable) when the database cannot be reached.
    """
    try:
        claimed, finished = _claim_batch(sessions, messages, max_text_chars=max_text_chars, bulk=True)
    except _Conflict:  # another worker inserted one of these jobs (or keys) meanwhile: one by one
        claimed, finished = _claim_batch(sessions, messages, max_text_chars=max_text_chars, bulk=False)
    results: list[Classified | None] = [None] * len(messages)
    todo: dict[int, _Claimed] = {}
    first_of: dict[str, int] = {}
    job_ids = [c.id if isinstance(c, Job) else c.job.id for c in claimed]
    for i, claim in enumerate(claimed):
        if job_ids[i] in first_of:  # the same job twice in one batch: classify it once
            continue
        first_of[job_ids[i]] = i
        if isinstance(claim, Job):
            results[i] = Classified(job_view(claim), finished[claim.id])
        else:
            todo[i] = claim
    scored, vectors = _score(classifier, list(todo.values()), sessions=sessions, refiner=refiner)
    if todo:
        with database_errors(), sessions.begin() as session, session.no_autoflush:
            stored = _store(session, classifier, todo, scored, vectors, refiner=refiner)
        for i, classified in stored.items():
            results[i] = classified
    return [_own_or_first(results, i, first_of[job_id]) for i, job_id in enumerate(job_ids)]


class _Conflict(Exception):
    """A bulk claim hit a job id or idempotency key inserted concurrently by another worker."""


def _claim_batch(
    sessions: sessionmaker[Session], messages: list[Message], *, max_text_chars: int, bulk: bool
) -> tuple[list[Job | _Claimed], dict[str, list[str]]]:
    """Claim every message in one transaction: the Job or _Claimed of each, and the pending
    deliveries of the jobs that were already finished.

    ``bulk``: new jobs are inserted in one statement at the end (raises _Conflict if another worker
    got there first); otherwise each insert has its own savepoint and a conflict is resolved row by row.
    """
    with database_errors(), sessions.begin() as session, session.no_autoflush:
        lookups = _Lookups(jobs.by_ids(session, [m.task_id for m in messages]), bulk=bulk)
        claimed = [_claim(session, m, max_text_chars=max_text_chars, lookups=lookups) for m in messages]
        if bulk:
            try:
                session.flush()
            except IntegrityError as e:
                raise _Conflict from e
        finished = {c.id: pending_deliveries(session, c.id) for c in claimed if isinstance(c, Job)}
    return claimed, finished


def _store(
    session: Session,
    classifier: Classifier,
    todo: dict[int, _Claimed],
    scored: list[Scored],
    vectors: np.ndarray,
    *,
    refiner: Refiner | None,
) -> dict[int, Classified]:
    """Mark the batch's jobs done (one executemany), plan their deliveries and keep their vectors as traffic."""
    claimed_all = list(todo.values())
    rows = []
    for claimed, outcome in zip(claimed_all, scored, strict=True):
        job = claimed.job  # detached: the claim's transaction is over; its fields are loaded
        result = to_result(outcome, version=claimed.version, model=classifier.model_id)
        jobs.mark_done(job, result=result, version_id=claimed.version_id)
        rows.append({column: getattr(job, column) for column in _DONE_COLUMNS})
    session.execute(update(Job), rows)
    subscribers: dict[tuple[int, str], list[Integration]] = {}
    out = {
        i: Classified(job_view(c.job), plan_deliveries(session, c.job, subscribers=subscribers))
        for i, c in todo.items()
    }
    if refiner is not None:
        for label_set_id, rows_of_set in _rows_by(claimed_all, lambda c: c.label_set_id).items():
            record(
                session,
                refiner.policy,
                label_set_id=label_set_id,
                model_id=classifier.model_id,
                vectors=vectors[rows_of_set],
            )
    return out


_DONE_COLUMNS = ("id", "status", "result", "error", "label_set_version_id", "finished_at")  # what mark_done sets


def _own_or_first(results: list[Classified | None], i: int, first: int) -> Classified:
    """A repeat within the batch shares its first occurrence's view (its deliveries are enqueued once)."""
    own = results[i]
    if own is not None:
        return own
    shared = results[first]
    assert shared is not None
    return Classified(shared.view, [])


def classify_message(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    *,
    task_id: str,
    kwargs: Any,
    args: tuple[Any, ...] = (),
    max_text_chars: int,
) -> Classified:
    """One message: a batch of one."""
    return classify_batch(sessions, classifier, [Message(task_id, kwargs, args)], max_text_chars=max_text_chars)[0]


@dataclass
class _Lookups:
    """What one batch looks up once: its existing jobs, tenants by name, current versions by set."""

    jobs: dict[str, Job]
    bulk: bool = False  # new jobs wait for one flush at the end of the claim (no savepoint each)
    keys: dict[tuple[int, str], Job] = field(default_factory=dict)  # idempotency keys added in this batch
    claimed: dict[str, _Claimed] = field(default_factory=dict)  # jobs marked running by this batch
    tenants: dict[str, int | None] = field(default_factory=dict)
    refs: dict[tuple[int, str], tuple[int, int, int, int] | NotFoundError] = field(default_factory=dict)

    def tenant_id(self, session: Session, name: str) -> int | None:
        if name not in self.tenants:
            tenant = tenants.find_tenant(session, name)
            self.tenants[name] = tenant.id if tenant else None
        return self.tenants[name]

    def ref(self, session: Session, tenant_id: int, name: str) -> tuple[int, int, int, int]:
        """The set's current version reference; raises NotFoundError."""
        key = (tenant_id, name)
        if key not in self.refs:
            try:
                self.refs[key] = labelsets.current_version_ref(session, tenant_id=tenant_id, name=name)
            except NotFoundError as e:
                self.refs[key] = e
        found = self.refs[key]
        if isinstance(found, NotFoundError):
            raise found
        return found


def _claim(session: Session, message: Message, *, max_text_chars: int, lookups: _Lookups) -> Job | _Claimed:
    """Find or create the job and mark it running; a finished or failed job comes back as a Job."""
    try:
        msg = parse_message(message.kwargs, max_text_chars=max_text_chars, args=message.args)
    except InvalidInputError as e:
        job = _fail_unparsed(session, task_id=message.task_id, kwargs=message.kwargs, error=e.message, lookups=lookups)
        lookups.jobs[job.id] = job
        return job
    job = _find_or_create(session, task_id=message.task_id, msg=msg, lookups=lookups)
    if job.status in ("done", "failed"):
        return job
    if job.tenant_id is None:
        jobs.mark_failed(job, error=f"unknown tenant {msg.tenant!r}")
        return job
    try:
        ref = lookups.ref(session, job.tenant_id, msg.label_set)
    except NotFoundError as e:
        jobs.mark_failed(job, error=e.message)
        return job
    if job.id not in lookups.claimed:  # a key repeated within the batch is one job and one attempt
        jobs.mark_running(job)
        lookups.claimed[job.id] = _Claimed(job, msg.text, *ref)
    return lookups.claimed[job.id]


def _score(
    classifier: Classifier, todo: list[_Claimed], *, sessions: sessionmaker[Session], refiner: Refiner | None
) -> tuple[list[Scored], np.ndarray]:
    """Encode every text in one call, then score each against its own label set.

    Label vectors come from the in-process cache, else are built (label texts' embeddings from SQL
    when stored, else from the model); with a refiner, from the set's traffic as well.
    """
    if not todo:
        return [], np.zeros((0, 0), dtype=np.float32)
    vectors = classifier.encoder.encode([c.text for c in todo])
    label_encoder = StoredEncoder(classifier.encoder, sessions)
    out: list[Scored | None] = [None] * len(todo)
    for version_id, rows in _rows_by(todo, lambda c: c.version_id).items():
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
        for row, outcome in zip(rows, score(index, vectors[rows], top_k=classifier.top_k), strict=True):
            out[row] = outcome
    return [x for x in out if x is not None], vectors


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


def _rows_by(todo: list[_Claimed], key: Callable[[_Claimed], int]) -> dict[int, list[int]]:
    rows: dict[int, list[int]] = defaultdict(list)
    for row, claimed in enumerate(todo):
        rows[key(claimed)].append(row)
    return rows


def _find_or_create(session: Session, *, task_id: str, msg: ClassifyMessage, lookups: _Lookups) -> Job:
    job = lookups.jobs.get(task_id)
    if job is not None:
        return job
    tenant_id = lookups.tenant_id(session, msg.tenant)
    key = (tenant_id, msg.idempotency_key) if tenant_id is not None and msg.idempotency_key else None
    if key is not None:
        existing = lookups.keys.get(key) or jobs.find_by_key(session, tenant_id=key[0], key=key[1])
        if existing is not None:
            log.info("message %s repeats idempotency key of job %s", task_id, existing.id)
            return existing
    if lookups.bulk:
        job = jobs.new_job(session, id=task_id, tenant_id=tenant_id, **job_fields(msg))
    else:
        try:
            with session.begin_nested():
                job = jobs.add_job(session, id=task_id, tenant_id=tenant_id, **job_fields(msg))
        except IntegrityError:
            # Another worker inserted the same job or key between our read and our insert.
            again = jobs.find_job(session, task_id) or (
                jobs.find_by_key(session, tenant_id=key[0], key=key[1]) if key is not None else None
            )
            if again is None:
                raise
            return again
    lookups.jobs[task_id] = job
    if key is not None:
        lookups.keys[key] = job
    return job


def _fail_unparsed(session: Session, *, task_id: str, kwargs: Any, error: str, lookups: _Lookups) -> Job:
    """Record a message that failed validation as a failed job, keeping what it carried."""
    job = lookups.jobs.get(task_id) or jobs.find_job(session, task_id)
    if job is not None:
        if job.status != "done":
            jobs.mark_failed(job, error=error)
        return job
    data = kwargs if isinstance(kwargs, dict) else {"text": repr(kwargs)}
    tenant_name = _as_text(data.get("tenant"), limit=200)
    tenant = tenants.find_tenant(session, tenant_name) if isinstance(data.get("tenant"), str) else None
    job = (jobs.new_job if lookups.bulk else jobs.add_job)(
        session,
        id=task_id,
        tenant_id=tenant.id if tenant else None,
        tenant_name=tenant_name,
        label_set_name=_as_text(data.get("label_set"), limit=200),
        idempotency_key=None,
        text=_as_text(data.get("text"), limit=20_000),
        metadata_=sanitize(data.get("metadata")) if isinstance(data.get("metadata"), dict) else None,
        reply_to=None,
    )
    jobs.mark_failed(job, error=error)
    return job


def _as_text(value: Any, *, limit: int) -> str:
    text = value if isinstance(value, str) else ("" if value is None else repr(value))
    return str(sanitize(text, max_chars=limit))


def fail_job(sessions: sessionmaker[Session], *, job_id: str, error: str) -> None:
    """Mark a job failed after an unexpected error, if it exists and is not done."""
    with sessions.begin() as session:
        job = jobs.find_job(session, job_id)
        if job is not None and job.status != "done":
            jobs.mark_failed(job, error=error)
