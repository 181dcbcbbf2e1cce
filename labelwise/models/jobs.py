"""Jobs: one row per message, the source of truth for status and result."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelwise.errors import NotFoundError
from labelwise.models.tables import Job, utcnow

STATUSES = ("queued", "running", "done", "failed")


def get_job(session: Session, job_id: str, *, tenant_id: int | None = None) -> Job:
    """The job, restricted to ``tenant_id`` when given; raises NotFoundError."""
    job = session.get(Job, job_id)
    if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
        raise NotFoundError(f"unknown job {job_id!r}")
    return job


def find_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def by_ids(session: Session, job_ids: list[str]) -> dict[str, Job]:
    """The jobs among ``job_ids`` that exist, by id (one query)."""
    return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))}


def find_by_key(session: Session, *, tenant_id: int, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))


def add_job(session: Session, **fields: Any) -> Job:
    """Insert a job row (flushes, so a duplicate key raises IntegrityError here)."""
    job = new_job(session, **fields)
    session.flush()
    return job


def new_job(session: Session, **fields: Any) -> Job:
    """A queued job added to the session, inserted at its next flush (with others, in one statement)."""
    job = Job(status="queued", attempts=0, created_at=utcnow(), **fields)
    session.add(job)
    return job


def delete_job(session: Session, job_id: str) -> None:
    job = session.get(Job, job_id)
    if job is not None:
        session.delete(job)


def list_jobs(
    session: Session,
    *,
    tenant_id: int | None = None,
    status: str | None = None,
    label_set: str | None = None,
    before: tuple[dt.datetime, str] | None = None,
    limit: int = 50,
) -> list[Job]:
    """Newest first; ``before`` is the (created_at, id) of the last row of the previous page."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    if label_set:
        query = query.where(Job.label_set_name == label_set)
    if before is not None:
        created_at, job_id = before
        query = query.where((Job.created_at < created_at) | ((Job.created_at == created_at) & (Job.id < job_id)))
    return list(session.scalars(query))


def count_by_status(session: Session) -> dict[str, int]:
    """Jobs per status, over all tenants (for /metrics)."""
    rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
    return {status: int(n) for status, n in rows}


def mark_running(job: Job) -> None:
    job.status = "running"
    job.attempts += 1
    job.started_at = utcnow()


def mark_done(job: Job, *, result: dict[str, Any], version_id: int) -> None:
    job.status = "done"
    job.result = result
    job.error = None
    job.label_set_version_id = version_id
    job.finished_at = utcnow()


def mark_failed(job: Job, *, error: str) -> None:
    job.status = "failed"
    job.error = error
    job.finished_at = utcnow()
