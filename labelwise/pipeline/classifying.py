"""Jobs: submit, classify (the worker's use case), read, list."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.classifier import Classifier
from labelwise.errors import ConflictError, InvalidInputError
from labelwise.labelset import LabelSetDocument
from labelwise.messages import ClassifyMessage
from labelwise.models import integrations, jobs, labelsets, tenants
from labelwise.models.tables import Job
from labelwise.pipeline.common import database_errors
from labelwise.pipeline.views import job_view, to_result

log = logging.getLogger(__name__)


def get_job(session: Session, *, tenant_id: int, job_id: str) -> dict[str, Any]:
    return job_view(jobs.get_job(session, job_id, tenant_id=tenant_id))


def list_jobs(
    session: Session,
    *,
    tenant_id: int,
    status: str | None,
    label_set: str | None,
    limit: int,
    cursor: str | None,
    max_bytes: int | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the tenant's jobs, newest first, and the cursor of the next page (None at the end).

    With ``max_bytes`` the page also ends before the job that would take its JSON past that many bytes
    (it always holds at least one job); the cursor then continues from there."""
    rows = jobs.iter_jobs(
        session, tenant_id=tenant_id, status=status, label_set=label_set, before=decode_cursor(cursor), limit=limit + 1
    )
    views: list[dict[str, Any]] = []
    size, last = 0, None
    try:
        for job in rows:
            if len(views) == limit:
                return views, encode_cursor(last) if last is not None else None
            view = job_view(job)
            size += len(json.dumps(view, default=str, ensure_ascii=False).encode())
            if views and max_bytes is not None and size > max_bytes:
                return views, encode_cursor(last) if last is not None else None
            views.append(view)
            last = job
        return views, None
    finally:
        rows.close()  # the rest of the page is never fetched


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[dt.datetime, str] | None:
    """Raises InvalidInputError for a cursor this API did not hand out."""
    if not cursor:
        return None
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return dt.datetime.fromisoformat(created_at), str(job_id)
    except (ValueError, TypeError) as e:
        raise InvalidInputError("invalid cursor", field="cursor") from e


def submit_job(session: Session, msg: ClassifyMessage, *, job_id: str) -> tuple[Job, bool]:
    """Create a queued job for an API or CLI caller, checking tenant and label set up front.

    Returns ``(job, created)``. The same idempotency key returns the existing job; the same key with
    another text or label set raises ConflictError. The caller commits, then enqueues.
    """
    tenant = tenants.get_tenant(session, msg.tenant)
    fields = job_fields(msg, keep_text=not tenant.privacy)
    # that the set has a current version: one query that never loads its document (up to the caps' size)
    labelsets.current_version_ref(session, tenant_id=tenant.id, name=msg.label_set)
    if (
        msg.reply_to
        and integrations.find_integration(session, tenant_id=tenant.id, name=msg.reply_to.integration) is None
    ):
        raise InvalidInputError(f"unknown integration {msg.reply_to.integration!r}", field="reply_to.integration")
    if msg.idempotency_key:
        existing = jobs.find_by_key(session, tenant_id=tenant.id, key=msg.idempotency_key)
        if existing is not None:
            if fields != {k: getattr(existing, k) for k in fields}:
                raise ConflictError(f"idempotency key {msg.idempotency_key!r} was used for another message")
            return existing, False
    job = jobs.add_job(session, id=job_id, tenant_id=tenant.id, **fields)
    return job, True


def with_text(job: Job, msg: ClassifyMessage) -> Job:
    """The committed job carrying its message's text for publishing, also when the row keeps none
    (privacy mode): set on the detached object, never written to the database."""
    if job.text is None:
        job.text = msg.text
    return job


def submit_and_enqueue(
    sessions: sessionmaker[Session],
    msg: ClassifyMessage,
    *,
    publish: Callable[[Job], None],
    before_publish: Callable[[], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create the job, commit, then publish its message; returns ``(job view, created)``.

    Once committed the job is safe: when publishing fails (the broker is down) or this process dies
    before it, the reconciler publishes it later. ``before_publish`` is a test-only fault point.
    """
    with database_errors(), sessions.begin() as session:
        job, created = submit_job(session, msg, job_id=new_job_id())
        view = job_view(job)
    if created:
        if before_publish is not None:
            before_publish()
        publish_committed(sessions, [with_text(job, msg)], publish)
    return view, created


def publish_committed(sessions: sessionmaker[Session], committed: list[Job], publish: Callable[[Job], None]) -> None:
    """Publish committed jobs and record that they were; what fails here the reconciler publishes later."""
    try:
        for job in committed:
            publish(job)
    except Exception as e:
        log.warning("could not publish job(s) %s now (%s); the reconciler will", [j.id for j in committed], e)
        return
    try:
        with sessions.begin() as session:
            jobs.mark_enqueued(session, [j.id for j in committed])
    except Exception as e:  # published but not recorded: the reconciler may publish it again (harmless)
        log.warning("could not record the publish of %s (%s)", [j.id for j in committed], e)


def new_job_id() -> str:
    return str(uuid.uuid4())


def wait_for_job(
    sessions: sessionmaker[Session], job_id: str, *, timeout_s: float, poll_s: float = 0.05
) -> dict[str, Any]:
    """Poll until the job is done or failed, or ``timeout_s`` passes; returns its latest view."""
    deadline = time.monotonic() + timeout_s
    while True:
        with sessions() as session:
            view = job_view(jobs.get_job(session, job_id))
        if view["status"] in ("done", "failed") or time.monotonic() >= deadline:
            return view
        time.sleep(poll_s)


def jobs_finished(sessions: sessionmaker[Session], job_ids: list[str]) -> set[str]:
    """Those of ``job_ids`` that are done or failed (or gone): one indexed read of their statuses."""
    with database_errors(), sessions() as session:
        statuses = jobs.job_statuses(session, job_ids)
    return {i for i in job_ids if statuses.get(i, "done") in ("done", "failed")}


def job_fields(msg: ClassifyMessage, *, keep_text: bool = True) -> dict[str, Any]:
    """The job row's fields from a message; without ``keep_text`` (privacy mode) the text is left out."""
    return {
        "tenant_name": msg.tenant,
        "label_set_name": msg.label_set,
        "idempotency_key": msg.idempotency_key,
        "text": msg.text if keep_text else None,
        "metadata_": msg.metadata,
        "reply_to": msg.reply_to.model_dump() if msg.reply_to else None,
    }


def classify_now(session: Session, classifier: Classifier, *, tenant: str, label_set: str, text: str) -> dict[str, Any]:
    """Classify in this process without a job (``classify --local``, previews)."""
    tenant_row = tenants.get_tenant(session, tenant)
    version = labelsets.current_version(session, tenant_id=tenant_row.id, name=label_set)
    doc = LabelSetDocument.model_validate(version.document)
    scored = classifier.classify(version.id, doc, [text])[0]
    return {
        "job_id": None,
        "status": "done",
        "tenant": tenant,
        "label_set": label_set,
        **to_result(scored, version=version.version, model=classifier.model_id),
        "error": None,
    }
