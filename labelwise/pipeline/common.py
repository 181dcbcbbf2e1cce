"""Shared helpers of the use cases."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def database_errors() -> Iterator[None]:
    """Turn a lost or locked database into DatabaseUnavailableError (retryable)."""
    try:
        yield
    except (OperationalError, InterfaceError) as e:  # the driver's text (host, port, user) stays in the log
        log.warning("database unavailable: %s", e.orig or e)
        raise DatabaseUnavailableError("database unavailable") from e


def readiness(sessions: sessionmaker[Session], celery: Any, *, worker_within_s: float | None = None) -> dict[str, str]:
    """``{"database": "ok" | reason, "broker": "ok" | reason}``; with ``worker_within_s`` also
    ``"worker"``: whether any worker's heartbeat is at most that old."""
    from labelwise.pipeline.operating import worker_check

    checks = {}
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
            if worker_within_s is not None:
                checks["worker"] = worker_check(session, within_s=worker_within_s)
        checks["database"] = "ok"
    except Exception as e:  # any failure means not ready; the reason is reported, not raised
        checks["database"] = f"unavailable: {type(e).__name__}"
        if worker_within_s is not None:
            checks["worker"] = "unknown: the database is unavailable"
    try:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as e:
        checks["broker"] = f"unavailable: {type(e).__name__}"
    return checks


def backoff_s(attempt: int, *, base_s: float, cap_s: float, at_least_s: float | None = None) -> float:
    """Delay before retry ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))`` with jitter in
    [0.5, 1], and never less than ``at_least_s`` (a peer's Retry-After)."""
    delay = min(cap_s, base_s * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0)
    return max(delay, at_least_s or 0.0)


def open_counts(session: Session) -> dict[str, dict[str, int]]:
    """Jobs queued and running, deliveries pending and retrying, over all tenants (cheap at any size)."""
    from labelwise.models import integrations, jobs

    return {
        "jobs": jobs.count_open_by_status(session),
        "deliveries": integrations.count_open_deliveries_by_status(session),
    }


def estimated_jobs(session: Session) -> int | None:
    """About how many jobs there are, without counting them (None where the database gives no estimate)."""
    from labelwise.models import jobs

    return jobs.estimated_count(session)


def counts(session: Session) -> dict[str, dict[str, int]]:
    """Jobs and deliveries per status, over all tenants."""
    from labelwise.models import integrations, jobs

    return {"jobs": jobs.count_by_status(session), "deliveries": integrations.count_deliveries_by_status(session)}
