"""Jobs: one row per message, the source of truth for status and result."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from labelwise.errors import NotFoundError
from labelwise.models.tables import Job, JobAlias, utcnow

STATUSES = ("queued", "running", "done", "failed")


def get_job(session: Session, job_id: str, *, tenant_id: int | None = None) -> Job:
    """The job, or the job an alias names (a message that repeated its key), restricted to ``tenant_id``
    when given; raises NotFoundError."""
    job = session.get(Job, job_id)
    if job is None:
        alias = session.get(JobAlias, job_id)
        job = session.get(Job, alias.job_id) if alias is not None else None
    if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
        raise NotFoundError(f"unknown job {job_id!r}")
    return job


def find_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def add_alias(session: Session, *, task_id: str, job: Job) -> None:
    """Record that message ``task_id`` repeated ``job``'s idempotency key (its id now finds the job)."""
    if job.tenant_id is not None and session.get(JobAlias, task_id) is None:
        session.add(JobAlias(task_id=task_id, job_id=job.id, tenant_id=job.tenant_id))


def by_ids(session: Session, job_ids: list[str]) -> dict[str, Job]:
    """The jobs among ``job_ids`` that exist, by id (one query)."""
    return {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(job_ids)))}


def find_by_key(session: Session, *, tenant_id: int, key: str) -> Job | None:
    """The job that owns ``key`` (not a failed repeat of it)."""
    return session.scalar(
        select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key, Job.duplicate_of.is_(None))
    )


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


def due_for_publish(
    session: Session, *, now: dt.datetime, grace_s: float, stuck_after_s: float, limit: int
) -> list[Job]:
    """Jobs whose message must be published (again): committed but never published past ``grace_s``,
    or queued or running without progress for ``stuck_after_s`` (their message was lost)."""
    grace, stuck = now - dt.timedelta(seconds=grace_s), now - dt.timedelta(seconds=stuck_after_s)
    never = (Job.status == "queued") & Job.enqueued_at.is_(None) & (Job.created_at < grace)
    lost = (Job.status == "queued") & (Job.enqueued_at < stuck)
    hung = (
        (Job.status == "running") & (Job.started_at < stuck) & or_(Job.enqueued_at.is_(None), Job.enqueued_at < stuck)
    )
    query = (
        select(Job)
        .where(Job.status.in_(("queued", "running")), never | lost | hung)
        .order_by(Job.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def mark_enqueued(session: Session, job_ids: list[str], *, at: dt.datetime | None = None) -> None:
    """Record that these jobs' messages were published (one statement)."""
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=at or utcnow()))


def lock_running(session: Session, job_ids: list[str]) -> set[str]:
    """Of ``job_ids``, those still ``running``, locked until the transaction ends (PostgreSQL)."""
    query = select(Job.id).where(Job.id.in_(job_ids), Job.status == "running").with_for_update()
    return set(session.scalars(query))


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
    job.classifications = (job.classifications or 0) + 1


def mark_failed(job: Job, *, error: str) -> None:
    job.status = "failed"
    job.error = error
    job.finished_at = utcnow()
