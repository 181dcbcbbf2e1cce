"""Operating the workers: heartbeats, and whether any worker is alive (for /readyz)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from labelwise.models import workers
from labelwise.models.tables import utcnow
from labelwise.pipeline.common import database_errors

PRUNE_AFTER = dt.timedelta(days=1)


def heartbeat(sessions: sessionmaker[Session], *, name: str, host: str, pid: int, messages: int) -> None:
    """Record that worker ``name`` is running and has handled ``messages``; forget workers gone for a day.

    Raises DatabaseUnavailableError when the database cannot be reached."""
    with database_errors(), sessions.begin() as session:
        workers.beat(session, name=name, host=host, pid=pid, messages=messages)
        workers.prune(session, older_than=utcnow() - PRUNE_AFTER)


def worker_stopped(sessions: sessionmaker[Session], *, name: str) -> None:
    """A worker shut down cleanly: it is no longer counted as alive."""
    with database_errors(), sessions.begin() as session:
        workers.forget(session, name=name)


def worker_check(session: Session, *, within_s: float) -> str:
    """``"ok"`` when a worker was seen in the last ``within_s`` seconds, else the reason."""
    alive = workers.count_seen_since(session, utcnow() - dt.timedelta(seconds=within_s))
    return "ok" if alive else f"unavailable: no worker seen in the last {within_s:g} s"
