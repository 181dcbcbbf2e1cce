"""Claiming a batch: find or create each message's job and mark it running, in one transaction.

A message that fails validation becomes a failed job that keeps every field that did parse (tenant,
idempotency key, text) beside its reason. A message repeating a job's idempotency key is that job
(its task id becomes an alias), or, with another body, a failed job of its own that names the owner.
A job claimed ``max_attempts`` times without finishing (its worker died each time) fails instead of
killing another worker.

The jobs a claim reads stay locked until it commits (``jobs.write_lock``, reads with ``lock=True``): a
worker still holding a redelivered message that stores its result meanwhile is waited for, and the job
is read done, never set running again over that result (and classified twice).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import InvalidInputError, NotFoundError
from labelwise.messages import MAX_METADATA_BYTES, ClassifyMessage, parse_message, sanitize, unstorable
from labelwise.models import jobs, labelsets, tenants
from labelwise.models.tables import Job
from labelwise.pipeline.classifying import job_fields
from labelwise.pipeline.common import database_errors
from labelwise.pipeline.integrating import pending_deliveries

log = logging.getLogger(__name__)
DEFAULT_MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Message:
    """One ``labelwise.classify`` message as Celery hands it over."""

    task_id: str
    kwargs: Any
    args: tuple[Any, ...] = ()


Ref = tuple[int, int, int, int]  # a label set's version to score with: (row id, number, set id, messages seen)


@dataclass(frozen=True)
class Limits:
    """What a message may carry, how often a job may be tried, and which label-set version it is scored
    with now (``route``: see labelwise.pipeline.label_vectors; None: the set's current version, always)."""

    max_text_chars: int
    max_metadata_bytes: int = MAX_METADATA_BYTES
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    route: Callable[[Ref], Ref] | None = None


@dataclass(frozen=True)
class Claimed:
    """A job to classify (its row, detached once claimed), with the label-set version it uses."""

    job: Job
    text: str
    version_id: int
    version: int
    label_set_id: int
    seen: int
    suspect: bool = False  # claimed before without finishing: tried alone, its attempt counted then


class Conflict(Exception):
    """A bulk claim hit a job id, alias or idempotency key inserted concurrently by another worker."""


class Elsewhere(Exception):
    """``Limits.route`` raises it when this lane does not classify the message now (the express lane and a
    label set's first version too big to build inside its batch: labelwise.pipeline.label_vectors). The job
    stays queued, unclaimed, and the exception is the message's outcome: labelwise.worker.handling hands the
    message to the main lane."""

    job_id = ""


def claim_batch(
    sessions: sessionmaker[Session], messages: list[Message], *, limits: Limits, bulk: bool
) -> tuple[list[Job | Claimed | Elsewhere], dict[str, list[str]]]:
    """Claim every message in one transaction: the Job (finished or failed), Claimed or Elsewhere (left
    queued for another lane) of each, and the pending deliveries of the jobs that were already finished.

    ``bulk``: new rows are inserted in one flush at the end (raises Conflict if another worker got there
    first); otherwise each insert has its own savepoint and a conflict is resolved row by row.
    """
    with database_errors(), sessions.begin() as session, session.no_autoflush:
        jobs.write_lock(session)  # a job another worker stores meanwhile is waited for, never written over
        lookups = Lookups(jobs.by_ids(session, [m.task_id for m in messages], lock=True), bulk=bulk)
        claimed = [_claim(session, m, limits=limits, lookups=lookups) for m in messages]
        if bulk:
            try:
                jobs.insert_many(session, lookups.new)
                session.flush()
            except IntegrityError as e:
                raise Conflict from e
        finished = {c.id: pending_deliveries(session, c.id) for c in claimed if not isinstance(c, Claimed | Elsewhere)}
    return claimed, finished


@dataclass
class Lookups:
    """What one batch looks up once: its existing jobs, tenants by name, current versions by set."""

    jobs: dict[str, Job]
    bulk: bool = False  # new rows wait for one insert at the end of the claim (no savepoint each)
    new: list[Job] = field(default_factory=list)  # (bulk) new jobs, inserted together at the end
    keys: dict[tuple[int, str], Job] = field(default_factory=dict)  # idempotency keys added in this batch
    claimed: dict[str, Claimed] = field(default_factory=dict)  # jobs marked running by this batch
    tenants: dict[str, int | None] = field(default_factory=dict)
    private: set[int] = field(default_factory=set)  # tenants in privacy mode: no text in their job rows
    refs: dict[tuple[int, str], tuple[int, int, int, int] | NotFoundError] = field(default_factory=dict)

    def tenant_id(self, session: Session, name: str) -> int | None:
        if name not in self.tenants:
            tenant = tenants.find_tenant(session, name)
            self.tenants[name] = tenant.id if tenant else None
            if tenant is not None and tenant.privacy:
                self.private.add(tenant.id)
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

    def owner(self, session: Session, tenant_id: int, key: str) -> Job | None:
        return self.keys.get((tenant_id, key)) or jobs.find_by_key(session, tenant_id=tenant_id, key=key, lock=True)


def _claim(session: Session, message: Message, *, limits: Limits, lookups: Lookups) -> Job | Claimed | Elsewhere:
    """Find or create the job and mark it running; a finished or failed job comes back as a Job, one that
    this lane leaves to another (``limits.route``) as Elsewhere."""
    try:
        msg = parse_message(
            message.kwargs,
            max_text_chars=limits.max_text_chars,
            args=message.args,
            max_metadata_bytes=limits.max_metadata_bytes,
        )
    except InvalidInputError as e:
        return _fail_unparsed(session, task_id=message.task_id, kwargs=message.kwargs, error=e.message, lookups=lookups)
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
    if job.id in lookups.claimed:  # a key repeated within the batch is one job and one attempt
        return lookups.claimed[job.id]
    if limits.route is not None:
        try:
            ref = limits.route(ref)
        except Elsewhere as e:
            e.job_id = job.id
            return e
    if job.attempts >= limits.max_attempts:
        jobs.mark_failed(
            job,
            error=f"gave up after {job.attempts} attempts: the worker stopped (crashed or was killed) "
            "each time it classified this message",
        )
        return job
    # Claimed before and never finished (its worker died, or its batch met an outage): it is tried alone
    # (pipeline.working), and its attempt is counted then, not for a batch it merely sat in.
    suspect = job.attempts > 0
    jobs.mark_running(job, count_attempt=not suspect)
    lookups.claimed[job.id] = Claimed(job, msg.text, *ref, suspect=suspect)
    return lookups.claimed[job.id]


def _find_or_create(session: Session, *, task_id: str, msg: ClassifyMessage, lookups: Lookups) -> Job:
    job = lookups.jobs.get(task_id)
    if job is not None:
        return job
    tenant_id = lookups.tenant_id(session, msg.tenant)
    fields = {"tenant_id": tenant_id, **job_fields(msg, keep_text=tenant_id not in lookups.private)}
    if tenant_id is not None and msg.idempotency_key:
        owner = lookups.owner(session, tenant_id, msg.idempotency_key)
        if owner is not None:
            return _repeat(session, task_id=task_id, fields=fields, owner=owner, lookups=lookups)
    return _insert(session, task_id=task_id, fields=fields, lookups=lookups)


def _repeat(session: Session, *, task_id: str, fields: dict[str, Any], owner: Job, lookups: Lookups) -> Job:
    """A message repeating ``owner``'s key: the same job (same body), or a failed job of its own."""
    if all(getattr(owner, k) == v for k, v in fields.items()):
        log.info("message %s repeats idempotency key of job %s", task_id, owner.id)
        _add_alias(session, task_id=task_id, owner=owner, lookups=lookups)
        lookups.jobs[task_id] = owner
        return owner
    job = _insert(session, task_id=task_id, fields={**fields, "duplicate_of": owner.id}, lookups=lookups)
    jobs.mark_failed(
        job,
        error=f"idempotency key {owner.idempotency_key!r} already names job {owner.id}, sent with another "
        "message; send a new message with a new key",
    )
    return job


def _add_alias(session: Session, *, task_id: str, owner: Job, lookups: Lookups) -> None:
    if lookups.bulk:
        jobs.add_alias(session, task_id=task_id, job=owner)
        return
    try:
        with session.begin_nested():
            jobs.add_alias(session, task_id=task_id, job=owner)
    except IntegrityError:
        pass  # the same message, redelivered to another worker meanwhile, recorded it first


def _insert(session: Session, *, task_id: str, fields: dict[str, Any], lookups: Lookups) -> Job:
    """A new queued job whose message is in the broker (so it counts as published)."""
    fields = {**fields, "enqueued_at": None}
    if lookups.bulk:
        job = jobs.new_job(None, id=task_id, **fields)
        lookups.new.append(job)
    else:
        try:
            with session.begin_nested():
                job = jobs.add_job(session, id=task_id, **fields)
        except IntegrityError:
            # Another worker inserted the same job or key between our read and our insert.
            again = _raced(session, task_id=task_id, fields=fields)
            if again is None:
                raise
            return again
    job.enqueued_at = job.created_at
    lookups.jobs[task_id] = job
    if fields.get("tenant_id") is not None and fields.get("idempotency_key") and not fields.get("duplicate_of"):
        lookups.keys[(fields["tenant_id"], fields["idempotency_key"])] = job
    return job


def _raced(session: Session, *, task_id: str, fields: dict[str, Any]) -> Job | None:
    found = jobs.find_job(session, task_id, lock=True)
    if found is None and fields.get("tenant_id") is not None and fields.get("idempotency_key"):
        found = jobs.find_by_key(session, tenant_id=fields["tenant_id"], key=fields["idempotency_key"], lock=True)
    return found


def _fail_unparsed(session: Session, *, task_id: str, kwargs: Any, error: str, lookups: Lookups) -> Job:
    """Record a message that failed validation as a failed job, keeping what it carried."""
    job = lookups.jobs.get(task_id) or jobs.find_job(session, task_id, lock=True)
    if job is not None:
        if job.status != "done":
            jobs.mark_failed(job, error=error)
        return job
    fields = salvage(session, kwargs, lookups=lookups)
    key = fields["idempotency_key"]
    if fields["tenant_id"] is not None and key:
        owner = lookups.owner(session, fields["tenant_id"], key)
        if owner is not None:
            if owner.status == "failed" and all(getattr(owner, k) == v for k, v in fields.items()):
                _add_alias(session, task_id=task_id, owner=owner, lookups=lookups)
                lookups.jobs[task_id] = owner
                return owner  # the same bad message again
            fields["duplicate_of"] = owner.id
            error = f"{error}; its idempotency key {key!r} also names job {owner.id}"
    job = _insert(session, task_id=task_id, fields=fields, lookups=lookups)
    jobs.mark_failed(job, error=error)
    return job


def salvage(session: Session, kwargs: Any, *, lookups: Lookups | None = None) -> dict[str, Any]:
    """The job fields a malformed message still carries, made storable (text cut, bad characters
    replaced); its key only when it is a usable key."""
    data = kwargs if isinstance(kwargs, dict) else {"text": repr(kwargs)}
    tenant_name = _as_text(data.get("tenant"), limit=200)
    tenant_id, private = None, False
    if isinstance(data.get("tenant"), str) and unstorable(data["tenant"]) is None:
        lookups = lookups or Lookups({})
        tenant_id = lookups.tenant_id(session, tenant_name)
        private = tenant_id in lookups.private
    key = data.get("idempotency_key")
    usable_key = isinstance(key, str) and 0 < len(key) <= 200 and unstorable(key) is None
    return {
        "tenant_id": tenant_id,
        "tenant_name": tenant_name,
        "label_set_name": _as_text(data.get("label_set"), limit=200),
        "idempotency_key": key if usable_key else None,
        "text": None if private else _as_text(data.get("text"), limit=20_000),
        "metadata_": sanitize(data.get("metadata")) if isinstance(data.get("metadata"), dict) else None,
        "reply_to": None,
    }


def _as_text(value: Any, *, limit: int) -> str:
    text = value if isinstance(value, str) else ("" if value is None else repr(value))
    return str(sanitize(text, max_chars=limit))


def fail_message(session: Session, message: Message, *, error: str) -> Job:
    """Record ``message`` as failed with ``error``, creating its job if needed (a batch-mate's failure
    never touches it); a done job stays done."""
    jobs.write_lock(session)
    job = jobs.find_job(session, message.task_id, lock=True)
    if job is None:
        lookups = Lookups({}, bulk=False)
        return _fail_unparsed(session, task_id=message.task_id, kwargs=message.kwargs, error=error, lookups=lookups)
    if job.status != "done":
        jobs.mark_failed(job, error=error)
    return job
