"""Queries of a tenant's export and import: its rows read in export order, and written back elsewhere."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from labelwise.models.tables import ApiToken, Integration, Job, LabelSet, LabelSetVersion, Tenant


def label_sets(session: Session, *, tenant_id: int) -> list[LabelSet]:
    """Every label set of the tenant, deleted ones too, by name."""
    return list(session.scalars(select(LabelSet).where(LabelSet.tenant_id == tenant_id).order_by(LabelSet.name)))


def versions(session: Session, *, tenant_id: int) -> list[tuple[str, LabelSetVersion]]:
    """Every version of every label set of the tenant, as (set name, version), by set and version."""
    rows = session.execute(
        select(LabelSet.name, LabelSetVersion)
        .join(LabelSet, LabelSet.id == LabelSetVersion.label_set_id)
        .where(LabelSetVersion.tenant_id == tenant_id)
        .order_by(LabelSet.name, LabelSetVersion.version)
    )
    return [(name, version) for name, version in rows]


def integrations(session: Session, *, tenant_id: int) -> list[Integration]:
    return list(
        session.scalars(select(Integration).where(Integration.tenant_id == tenant_id).order_by(Integration.name))
    )


def tokens(session: Session, *, tenant_id: int) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_id).order_by(ApiToken.id)))


def jobs_between(
    session: Session, *, tenant_id: int, since: dt.datetime | None, until: dt.datetime | None, page: int = 1_000
) -> Iterator[Job]:
    """The tenant's jobs created in [since, until), oldest first, read a page at a time (keyset)."""
    after: tuple[dt.datetime, str] | None = None
    while True:
        query = select(Job).where(Job.tenant_id == tenant_id)
        if since is not None:
            query = query.where(Job.created_at >= since)
        if until is not None:
            query = query.where(Job.created_at < until)
        if after is not None:
            query = query.where(tuple_(Job.created_at, Job.id) > after)
        rows = list(session.scalars(query.order_by(Job.created_at, Job.id).limit(page)))
        yield from rows
        if len(rows) < page:
            return
        after = (rows[-1].created_at, rows[-1].id)
        session.expunge_all()  # a long export holds one page in memory, not every job


def add_label_set(session: Session, *, tenant_id: int, **fields: Any) -> LabelSet:
    row = LabelSet(tenant_id=tenant_id, **fields)
    session.add(row)
    session.flush()
    return row


def add_version(session: Session, *, tenant_id: int, label_set_id: int, **fields: Any) -> LabelSetVersion:
    row = LabelSetVersion(tenant_id=tenant_id, label_set_id=label_set_id, **fields)
    session.add(row)
    session.flush()
    return row


def add_integration(session: Session, *, tenant_id: int, secrets: str, **fields: Any) -> Integration:
    """A new integration with a new public id (its inbound hook URLs change with the installation)."""
    row = Integration(tenant_id=tenant_id, public_id=uuid.uuid4().hex, secrets=secrets, **fields)
    session.add(row)
    session.flush()
    return row


def add_jobs(session: Session, *, tenant_id: int, rows: list[dict[str, Any]]) -> None:
    """Insert jobs (ORM bulk insert: no objects kept in the session, so a big import holds one batch)."""
    if rows:
        session.execute(insert(Job), [{"tenant_id": tenant_id, "classifications": 0, **fields} for fields in rows])


def set_tenant_data(session: Session, tenant: Tenant, *, retention_days: int | None, privacy: bool) -> None:
    tenant.retention_days, tenant.privacy = retention_days, privacy
