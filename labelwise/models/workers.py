"""Worker heartbeats: which worker processes are running, and when each was last seen."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from labelwise.models.tables import WorkerHeartbeat, utcnow


def beat(session: Session, *, name: str, host: str, pid: int, messages: int) -> None:
    """Insert or refresh the row of worker ``name`` (seen now)."""
    row = session.get(WorkerHeartbeat, name)
    if row is None:
        session.add(WorkerHeartbeat(name=name, host=host, pid=pid, messages=messages))
        return
    row.seen_at, row.messages = utcnow(), messages


def forget(session: Session, *, name: str) -> None:
    """Delete worker ``name``'s row (a clean shutdown)."""
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))


def prune(session: Session, *, older_than: dt.datetime) -> int:
    """Delete the rows of workers not seen since ``older_than`` (killed ones); how many."""
    return session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < older_than)).rowcount or 0


def count_seen_since(session: Session, since: dt.datetime) -> int:
    """How many workers were seen at or after ``since``."""
    return session.scalar(select(func.count()).where(WorkerHeartbeat.seen_at >= since)) or 0


def list_workers(session: Session) -> list[WorkerHeartbeat]:
    """Every row, most recently seen first."""
    return list(session.scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.seen_at.desc())))
