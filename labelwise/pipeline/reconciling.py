"""The reconciler: publish again what was committed but never reached a worker (a transactional outbox).

A job is committed first and published second, so a process that dies in between (the API, a hook, the
CLI), a broker that is down at that moment, or a broker that loses a message leaves a job ``queued``
with nobody to run it; a delivery planned by a worker that died before publishing it stays ``pending``.
Every few seconds one process (whoever holds the ``reconciler`` lease) finds them and publishes them
again. Publishing twice is harmless: a job is classified once whatever the number of its messages, and
a delivery attempt takes a lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from labelwise.models import integrations, jobs, leases
from labelwise.models.tables import Job, utcnow
from labelwise.pipeline.common import database_errors

log = logging.getLogger(__name__)
LEASE = "reconciler"


@dataclass(frozen=True)
class Policy:
    """When work counts as stuck, and how much one pass handles."""

    grace_s: float = 5.0  # committed but not published after this long: publish it
    stuck_after_s: float = 600.0  # published, but no progress after this long: publish it again
    lease_ttl_s: float = 30.0  # the holder must run again within this long, or another takes over
    batch: int = 500


@dataclass(frozen=True)
class Pass:
    jobs: int
    deliveries: int


def reconcile(
    sessions: sessionmaker[Session],
    *,
    holder: str,
    policy: Policy,
    publish_job: Callable[[Job], None],
    publish_delivery: Callable[[str], None],
) -> Pass | None:
    """One pass, if ``holder`` holds (or takes) the lease; None when another process holds it.

    Raises DatabaseUnavailableError when the database cannot be reached; a publish that fails stops the
    pass (the broker is down: the next pass tries again)."""
    now = utcnow()
    with database_errors(), sessions.begin() as session:
        if not leases.try_acquire(session, name=LEASE, holder=holder, ttl_s=policy.lease_ttl_s, now=now):
            return None
        due_jobs = jobs.due_for_publish(
            session, now=now, grace_s=policy.grace_s, stuck_after_s=policy.stuck_after_s, limit=policy.batch
        )
        due_jobs = _without_lost_texts(session, due_jobs)
        due_deliveries = [
            d.id
            for d in integrations.deliveries_due(
                session, now=now, grace_s=policy.grace_s, stuck_after_s=policy.stuck_after_s, limit=policy.batch
            )
        ]
    by_id = {j.id: j for j in due_jobs}
    published_jobs = _publish_all(list(by_id), lambda job_id: publish_job(by_id[job_id]), "job")
    published_deliveries = _publish_all(due_deliveries, publish_delivery, "delivery")
    with database_errors(), sessions.begin() as session:
        jobs.mark_enqueued(session, published_jobs)
        integrations.mark_deliveries_enqueued(session, published_deliveries)
    if published_jobs or published_deliveries:
        log.info(
            "reconciler: published %d jobs and %d deliveries again", len(published_jobs), len(published_deliveries)
        )
    return Pass(len(published_jobs), len(published_deliveries))


def _without_lost_texts(session: Session, due: list[Job]) -> list[Job]:
    """Fail the due jobs whose text exists nowhere any more (privacy mode keeps none in SQL, so a message
    the broker lost, or never got, cannot be made again); the others, to publish. A job a worker finished
    since it was read keeps its result (jobs.fail_open)."""
    jobs.fail_open(
        session,
        [job.id for job in due if job.text is None],
        error="its message never reached a worker and its text was not stored (privacy mode); send the message again",
    )
    return [job for job in due if job.text is not None]


def _publish_all(ids: list[str], publish: Callable[[str], None], what: str) -> list[str]:
    done = []
    for item in ids:
        try:
            publish(item)
        except Exception as e:  # the broker is down: the next pass tries again
            log.warning("reconciler: could not publish %s %s: %s: %s", what, item, type(e).__name__, e)
            break
        done.append(item)
    return done


def release(sessions: sessionmaker[Session], *, holder: str) -> None:
    """Give the lease up (clean shutdown), so another worker takes over at once."""
    with database_errors(), sessions.begin() as session:
        leases.release(session, name=LEASE, holder=holder)
