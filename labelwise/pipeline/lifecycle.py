"""The data lifecycle's use cases: delete a tenant, and the retention purge.

Deleting a tenant takes many short transactions, never one long one: access ends first (tokens and
console sessions), then its jobs go a batch at a time (with their deliveries and aliases), then every
other row of the tenant and the tenant itself in one last transaction. A message for the tenant that
arrives meanwhile makes a job that the last transaction removes; one that arrives after it names an
unknown tenant and fails like any other.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labelwise.errors import InvalidInputError
from labelwise.models import leases, lifecycle, tenants
from labelwise.models.tables import Tenant, utcnow
from labelwise.pipeline.common import database_errors
from labelwise.settings import Settings

log = logging.getLogger(__name__)

DELETE_BATCH = 1_000


def delete_tenant(sessions: sessionmaker[Session], name: str, *, batch: int = DELETE_BATCH) -> dict[str, Any]:
    """Delete the tenant ``name`` and every row it owns; ``{"tenant", "deleted": {table: rows}}``.

    Raises NotFoundError for an unknown tenant, DatabaseUnavailableError when the database is down (what
    was deleted stays deleted: run it again to finish)."""
    with database_errors(), sessions.begin() as session:
        tenant = tenants.get_tenant(session, name)
        events = lifecycle.revoke_access(session, tenant)
    jobs_deleted = 0
    while True:
        with database_errors(), sessions.begin() as session:
            done = lifecycle.delete_jobs_batch(session, tenant, limit=batch)
        jobs_deleted += done
        if done < batch:
            break
    with database_errors(), sessions.begin() as session:
        counts = lifecycle.delete_tenant_rows(session, tenant)
    counts["jobs"] += jobs_deleted
    counts["inbound_events"] += events
    return {"tenant": name, "deleted": counts}


# -- retention ---------------------------------------------------------------------------------------

PURGE_LEASE = "purge"


@dataclass(frozen=True)
class Retention:
    """How long what is kept, and how the purge paces itself."""

    days: int = 30  # a job's text and metadata, unless its tenant sets its own
    delivery_keep_days: int = 7  # settled deliveries (delivered, dead)
    inbound_dedupe_days: int = 7  # inbound platform event ids
    batch: int = 250  # rows per transaction
    pause_s: float = 0.05  # between two transactions, at least
    rest_ratio: float = 2.0  # and at least this times as long as the last one took
    lease_ttl_s: float = 180.0

    def rest_s(self, took_s: float) -> float:
        """The pause after a transaction that took ``took_s``: with rest_ratio 2 the purge keeps at most a
        third of one database connection busy, however slow a batch gets on a loaded server.
        bench/growth.py at 10M jobs, classification p99 during a purge over without it: batches of 1,000
        at rest_ratio 1, 1.08x and 2.71x (71,000 and 167,000 texts in 31 s); batches of 250 at
        rest_ratio 2, 0.80x and 1.24x (34,500 and 70,500 texts)."""
        return max(self.pause_s, took_s * self.rest_ratio)

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(
            days=settings.retention_days,
            delivery_keep_days=settings.delivery_keep_days,
            inbound_dedupe_days=settings.inbound_dedupe_days,
            batch=settings.purge_batch,
            pause_s=settings.purge_pause_s,
            lease_ttl_s=max(3 * settings.purge_interval_s, 60.0),
        )


def purge(
    sessions: sessionmaker[Session],
    *,
    holder: str,
    policy: Retention,
    now: dt.datetime | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> dict[str, int] | None:
    """One retention pass if ``holder`` holds (or takes) the purge lease; None when another process does.

    Past a tenant's retention a finished job loses its text and metadata (its result, label-set version,
    status, error, reply_to and timestamps stay); the tenant's console previews and evaluations go.
    Settled deliveries go after ``delivery_keep_days``, inbound event ids after ``inbound_dedupe_days``.
    Each batch is its own short transaction; a tenant whose watermark is past its cutoff costs nothing.
    The lease is renewed along the way; the pass ends early when ``stop()`` or when the lease is lost.
    Returns rows changed per kind."""
    now = now or utcnow()
    out = {"texts": 0, "console": 0, "deliveries": 0, "inbound_events": 0}
    lease = _Lease(sessions, holder, policy)
    if not lease.hold():
        return None
    with database_errors(), sessions() as session:
        plan = [(t.id, t.retention_days or policy.days, t.purged_before) for t in lifecycle.tenants_for_purge(session)]
    for tenant_id, days, purged_before in plan:
        cutoff = now - dt.timedelta(days=days)
        if purged_before is not None and purged_before >= cutoff:
            continue  # done up to its cutoff by an earlier pass
        if stop() or not lease.hold():
            return out
        texts, console = _purge_tenant(sessions, tenant_id, cutoff, purged_before, policy, stop)
        out["texts"] += texts
        out["console"] += console
    orphan_cutoff = now - dt.timedelta(days=policy.days)
    out["texts"] += _drain(
        sessions, lambda s: lifecycle.purge_orphan_jobs(s, before=orphan_cutoff, limit=policy.batch), policy, stop
    )
    deliveries_cutoff = now - dt.timedelta(days=policy.delivery_keep_days)
    out["deliveries"] = _drain(
        sessions, lambda s: lifecycle.prune_deliveries(s, before=deliveries_cutoff, limit=policy.batch), policy, stop
    )
    events_cutoff = now - dt.timedelta(days=policy.inbound_dedupe_days)
    out["inbound_events"] = _drain(
        sessions, lambda s: lifecycle.prune_inbound_events(s, before=events_cutoff, limit=policy.batch), policy, stop
    )
    if any(out.values()):
        log.info("purge: %s", out)
    return out


class _Lease:
    """The purge lease, renewed at most every third of its time to live (not at every tenant)."""

    def __init__(self, sessions: sessionmaker[Session], holder: str, policy: Retention) -> None:
        self.sessions, self.holder, self.ttl_s = sessions, holder, policy.lease_ttl_s
        self.renewed = -float("inf")

    def hold(self) -> bool:
        if time.monotonic() - self.renewed < self.ttl_s / 3:
            return True
        with database_errors(), self.sessions.begin() as session:
            held = leases.try_acquire(session, name=PURGE_LEASE, holder=self.holder, ttl_s=self.ttl_s, now=utcnow())
        if held:
            self.renewed = time.monotonic()
        return held


def _purge_tenant(
    sessions: sessionmaker[Session],
    tenant_id: int,
    cutoff: dt.datetime,
    purged_before: dt.datetime | None,
    policy: Retention,
    stop: Callable[[], bool],
) -> tuple[int, int]:
    """Purge the tenant's finished jobs from its watermark up to ``cutoff`` (or its oldest open job, which
    still needs its text), moving the watermark along batch by batch; and its old console data.
    Returns (texts, console rows) removed."""
    texts = console = 0
    after, target = purged_before, cutoff
    first = True
    while not stop():
        t0 = time.monotonic()
        with database_errors(), sessions.begin() as session:
            lifecycle.without_waiting_for_disk(session)
            if first:
                oldest_open = lifecycle.oldest_open_job(session, tenant_id=tenant_id, before=cutoff)
                target = min(cutoff, oldest_open) if oldest_open else cutoff
                console = lifecycle.prune_console_data(session, tenant_id=tenant_id, before=cutoff)
                if after is not None and after >= target:
                    return 0, console
            count, last = lifecycle.purge_texts_batch(
                session, tenant_id=tenant_id, after=after, before=target, limit=policy.batch
            )
            after = target if count < policy.batch or last is None else last
            lifecycle.set_purged_before(session, tenant_id=tenant_id, when=after)
        first = False
        texts += count
        if after == target:
            break
        time.sleep(policy.rest_s(time.monotonic() - t0))
    return texts, console


def _drain(
    sessions: sessionmaker[Session], step: Callable[[Session], int], policy: Retention, stop: Callable[[], bool]
) -> int:
    done = 0
    while not stop():
        t0 = time.monotonic()
        with database_errors(), sessions.begin() as session:
            lifecycle.without_waiting_for_disk(session)
            count = step(session)
        done += count
        if count < policy.batch:
            break
        time.sleep(policy.rest_s(time.monotonic() - t0))
    return done


def release_purge(sessions: sessionmaker[Session], *, holder: str) -> None:
    with database_errors(), sessions.begin() as session:
        leases.release(session, name=PURGE_LEASE, holder=holder)


# -- a tenant's data settings ------------------------------------------------------------------------

UNSET: Any = object()


def data_settings(tenant: Tenant, *, default_days: int) -> dict[str, Any]:
    """``{"tenant", "retention_days" (own or null), "effective_retention_days", "privacy", "purged_before"}``."""
    return {
        "tenant": tenant.name,
        "retention_days": tenant.retention_days,
        "effective_retention_days": tenant.retention_days or default_days,
        "privacy": tenant.privacy,
        "purged_before": tenant.purged_before,
    }


def set_data_settings(
    session: Session, name: str, *, default_days: int, retention_days: int | None = UNSET, privacy: bool = UNSET
) -> dict[str, Any]:
    """Change the tenant's own retention (None: back to the default) and/or privacy mode; its settings after.

    Raises NotFoundError, InvalidInputError (retention_days outside 1..36500)."""
    tenant = tenants.get_tenant(session, name)
    if retention_days is not UNSET:
        if retention_days is not None and not 1 <= retention_days <= 36_500:
            raise InvalidInputError("retention_days is 1 to 36500, or null for the default", field="retention_days")
        tenant.retention_days = retention_days
    if privacy is not UNSET:
        tenant.privacy = bool(privacy)
    session.flush()
    return data_settings(tenant, default_days=default_days)
