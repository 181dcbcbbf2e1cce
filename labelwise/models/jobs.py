"""Jobs: one row per message, the source of truth for status and result."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Generator
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, text, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from labelwise.errors import NotFoundError
from labelwise.models.tables import Job, JobAlias, utcnow

STATUSES = ("queued", "running", "done", "failed")
# FOR NO KEY UPDATE: the lock an UPDATE of the row takes anyway; rows that reference the job (aliases,
# deliveries) can still be inserted meanwhile
ROW_LOCK: dict[str, Any] = {"key_share": True}


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


def job_statuses(session: Session, job_ids: list[str]) -> dict[str, str]:
    """The statuses of those of ``job_ids`` that exist (one indexed read for many polls)."""
    return {job_id: status for job_id, status in session.execute(select(Job.id, Job.status).where(Job.id.in_(job_ids)))}


def find_job(session: Session, job_id: str, *, lock: bool = False) -> Job | None:
    """The job, or None; ``lock``: see by_ids."""
    return session.get(Job, job_id, with_for_update=ROW_LOCK if lock else None, populate_existing=lock)


def write_lock(session: Session) -> None:
    """Begin the session's transaction holding SQLite's write lock (``BEGIN IMMEDIATE``), so that the jobs
    it reads stay as read until it commits; a no-op on PostgreSQL, where a read with ``lock=True`` locks
    its rows instead. Call it first in the transaction of anything that reads a job to change it (a
    claim, a failure): otherwise a job another worker finishes between the read and the write would be
    written over, and classified twice."""
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def add_alias(session: Session, *, task_id: str, job: Job) -> None:
    """Record that message ``task_id`` repeated ``job``'s idempotency key (its id now finds the job)."""
    if job.tenant_id is not None and session.get(JobAlias, task_id) is None:
        session.add(JobAlias(task_id=task_id, job_id=job.id, tenant_id=job.tenant_id))


def by_ids(session: Session, job_ids: list[str], *, lock: bool = False) -> dict[str, Job]:
    """The jobs among ``job_ids`` that exist, by id (one query).

    ``lock``: PostgreSQL locks the rows until the transaction ends (in id order, as a batch's results
    are stored, so two workers wait on each other in one order, never in a cycle) and reads them as
    last committed: a worker storing one of them meanwhile is waited for."""
    query = select(Job).where(Job.id.in_(job_ids))
    if lock:
        query = query.order_by(Job.id).with_for_update(**ROW_LOCK).execution_options(populate_existing=True)
    return {job.id: job for job in session.scalars(query)}


def find_by_key(session: Session, *, tenant_id: int, key: str, lock: bool = False) -> Job | None:
    """The job that owns ``key`` (not a failed repeat of it); ``lock``: see by_ids."""
    query = select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key, Job.duplicate_of.is_(None))
    if lock:
        query = query.with_for_update(**ROW_LOCK).execution_options(populate_existing=True)
    return session.scalar(query)


def add_job(session: Session, **fields: Any) -> Job:
    """Insert a job row (flushes, so a duplicate key raises IntegrityError here)."""
    job = new_job(session, **fields)
    session.flush()
    return job


_INSERT_COLUMNS = [(attr.key, attr.columns[0].name) for attr in sa_inspect(Job).column_attrs]
# A job not in the database yet, as a plain record with Job's attributes: a batch builds dozens, and
# SQLAlchemy's instrumented attributes cost more than everything else a new job needs (insert_many).
NewJob = dataclasses.make_dataclass("NewJob", [(key, Any, None) for key, _ in _INSERT_COLUMNS], slots=True)


def new_job(session: Session | None, **fields: Any) -> Any:
    """A queued job: a Job added to ``session`` (inserted at its next flush), or without a session a
    NewJob record for ``insert_many``."""
    defaults = {"status": "queued", "attempts": 0, "classifications": 0, "created_at": utcnow()}
    if session is None:
        return NewJob(**{**defaults, **fields})
    job = Job(**defaults, **fields)
    session.add(job)
    return job


_JSON_COLUMNS = {"metadata", "reply_to", "result"}


def insert_many(session: Session, new: list[Any]) -> None:
    """Insert jobs made by ``new_job(None, ...)`` in one statement; a duplicate id or key raises
    IntegrityError. On PostgreSQL the rows travel as one array per column (``unnest``): the statement's
    text is the same for every batch and the driver packs arrays much faster than row after row."""
    if not new:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.connection().execute(insert(Job.__table__), [_row(job) for job in new])
        return
    columns = [name for _, name in _INSERT_COLUMNS]
    arrays: dict[str, list[Any]] = {name: [] for name in columns}
    for job in new:
        for key, name in _INSERT_COLUMNS:
            value = getattr(job, key)
            arrays[name].append(json.dumps(value) if name in _JSON_COLUMNS and value is not None else value)
    # %(x)b: each array goes in binary format (psycopg escapes text-format array elements one by one)
    casts = ", ".join(f"%({c})b::{_PG_ARRAY_TYPES[c]}" for c in columns)
    session.connection().exec_driver_sql(
        f"INSERT INTO jobs ({', '.join(columns)}) SELECT * FROM unnest({casts})", arrays
    )


def _row(job: Job) -> dict[str, Any]:
    return {name: getattr(job, key) for key, name in _INSERT_COLUMNS}


_PG_ARRAY_TYPES = {
    column.name: (
        "jsonb[]" if column.name in _JSON_COLUMNS else f"{column.type.compile(dialect=postgresql.dialect())}[]"
    )
    for column in Job.__table__.columns
}


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
    return list(iter_jobs(session, tenant_id=tenant_id, status=status, label_set=label_set, before=before, limit=limit))


def iter_jobs(
    session: Session,
    *,
    tenant_id: int | None = None,
    status: str | None = None,
    label_set: str | None = None,
    before: tuple[dt.datetime, str] | None = None,
    limit: int = 50,
    chunk: int = 100,
) -> Generator[Job, None, None]:
    """As list_jobs, read ``chunk`` rows per query, each query continuing after the last row read: a
    caller that stops early loads no more. (Plain queries, not a server-side cursor: DECLARE, two
    FETCHes and CLOSE cost a page of 50 about 17 ms at 10M jobs, one plain query about 10.)"""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    if label_set:
        query = query.where(Job.label_set_name == label_set)
    left = limit
    while left > 0:
        step = query.limit(min(chunk, left))
        if before is not None:
            # one row-value comparison: the index (tenant_id, created_at) seeks to the page at any depth,
            # where "a < x OR (a = x AND b < y)" made it read and skip every row of the pages before
            step = step.where(tuple_(Job.created_at, Job.id) < before)  # each value bound with its column's type
        rows = list(session.scalars(step))
        yield from rows
        if len(rows) < min(chunk, left):
            return
        left -= len(rows)
        before = (rows[-1].created_at, rows[-1].id)


def count_open_by_status(session: Session) -> dict[str, int]:
    """Jobs queued and running, over all tenants: read from the small partial index ix_jobs_open, so it
    costs the same whatever the size of the table."""
    rows = session.execute(
        select(Job.status, func.count()).where(Job.status.in_(("queued", "running"))).group_by(Job.status)
    )
    return {status: int(n) for status, n in rows}


def estimated_count(session: Session) -> int | None:
    """The planner's estimate of the rows in jobs (PostgreSQL, as of the last ANALYZE: free to read), or
    None where there is none (SQLite; a table never analyzed)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    rows = session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'jobs'::regclass"))
    return int(rows) if rows is not None and rows >= 0 else None


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


DONE_COLUMNS = ("status", "result", "error", "label_set_version_id", "finished_at", "classifications")


def store_done(session: Session, done: list[Job]) -> set[str]:
    """Write the results of jobs marked done in memory (``mark_done``), but only of those still
    ``running`` in the database: one statement for the batch; returns the ids stored.

    A job another worker finished meanwhile keeps that worker's result (no job is classified twice).
    All of ``done`` share one ``finished_at``, which tells the stored rows apart in the rare case that
    some were not."""
    if session.get_bind().dialect.name == "postgresql":
        return _store_done_postgresql(session, done)
    table = Job.__table__
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.status == "running")
        .values({c: bindparam(f"b_{c}") for c in DONE_COLUMNS})
    )
    params = [{"b_id": job.id, **{f"b_{c}": getattr(job, c) for c in DONE_COLUMNS}} for job in done]
    stored = session.connection().execute(statement, params).rowcount
    ids = {job.id for job in done}
    if stored == len(done):
        return ids
    return set(session.scalars(select(Job.id).where(Job.id.in_(list(ids)), Job.finished_at == done[0].finished_at)))


def _store_done_postgresql(session: Session, done: list[Job]) -> set[str]:
    """store_done in one UPDATE ... FROM unnest(arrays) RETURNING the ids stored."""
    statement = (
        "UPDATE jobs SET status = 'done', result = v.result, error = NULL, label_set_version_id = v.version_id, "
        "finished_at = %(finished_at)s, classifications = jobs.classifications + 1 "
        "FROM unnest(%(ids)b::varchar[], %(results)b::jsonb[], %(version_ids)b::integer[]) "
        "AS v(id, result, version_id) WHERE jobs.id = v.id AND jobs.status = 'running' RETURNING jobs.id"
    )
    done = sorted(done, key=lambda job: job.id)  # rows locked in id order, as a claim locks them (by_ids)
    params = {
        "ids": [job.id for job in done],
        "results": [json.dumps(job.result) for job in done],
        "version_ids": [job.label_set_version_id for job in done],
        "finished_at": done[0].finished_at,
    }
    return {row[0] for row in session.connection().exec_driver_sql(statement, params)}


def mark_running(job: Job, *, count_attempt: bool = True) -> None:
    job.status = "running"
    if count_attempt:
        job.attempts += 1
    job.started_at = utcnow()


def count_attempt(session: Session, job_id: str) -> None:
    """One more attempt at the job (a job claimed before, about to be tried alone)."""
    session.execute(update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1))


def mark_done(job: Job, *, result: dict[str, Any], version_id: int) -> None:
    job.status = "done"
    job.result = result
    job.error = None
    job.label_set_version_id = version_id
    job.finished_at = utcnow()
    job.classifications = (job.classifications or 0) + 1


def fail_open(session: Session, job_ids: list[str], *, error: str) -> None:
    """Mark these jobs failed with ``error``, those still queued or running when the statement runs
    (one UPDATE): a job a worker finished since it was read keeps its result."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status.in_(("queued", "running")))
            .values(status="failed", error=error, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def mark_failed(job: Job, *, error: str) -> None:
    job.status = "failed"
    job.error = error
    job.finished_at = utcnow()
