"""Leases: a periodic duty that one process at a time performs (the reconciler, and any later one).

A lease is a row per duty: whoever holds an unexpired lease does the work; the holder renews it each
time it runs; when the holder dies, the lease runs out and another process takes it over.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labelwise.models.tables import Lease


def try_acquire(session: Session, *, name: str, holder: str, ttl_s: float, now: dt.datetime) -> bool:
    """Take or renew the lease ``name`` for ``holder`` until ``now + ttl_s``; False if another holds it.

    Flushes: the caller commits to make the lease visible to others."""
    expires = now + dt.timedelta(seconds=ttl_s)
    taken = session.execute(
        update(Lease)
        .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount:
        return True
    if session.get(Lease, name) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(Lease(name=name, holder=holder, expires_at=expires))
    except IntegrityError:  # another process created it at the same moment
        return False
    return True


def release(session: Session, *, name: str, holder: str) -> None:
    """Give the lease up (on shutdown), so another process takes over without waiting for it to expire."""
    session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        .execution_options(synchronize_session=False)
    )
