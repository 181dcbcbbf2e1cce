"""Queries of the tenant admin console: sessions, drafts and the activity a page shows.

Every function takes the tenant's id and never returns another tenant's rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from labelwise.models.tables import (
    ApiToken,
    ConsoleDraft,
    ConsoleSession,
    Delivery,
    Integration,
    Job,
    LabelSet,
    LabelSetVersion,
    Tenant,
    utcnow,
)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_session(session: Session, *, tenant_id: int, token_id: int, lifetime_s: int) -> tuple[ConsoleSession, str]:
    """A new console session; returns the row and the cookie secret (only its hash is stored)."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    row = ConsoleSession(
        id=_digest(secret),
        tenant_id=tenant_id,
        token_id=token_id,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + dt.timedelta(seconds=lifetime_s),
    )
    session.add(row)
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))  # prune the expired
    session.flush()
    return row, secret


def live_session(session: Session, secret: str) -> tuple[ConsoleSession, Tenant, str] | None:
    """The session, its tenant and its token's prefix, while unexpired and its token unrevoked."""
    row = session.execute(
        select(ConsoleSession, Tenant, ApiToken.prefix)
        .join(Tenant, Tenant.id == ConsoleSession.tenant_id)
        .join(ApiToken, ApiToken.id == ConsoleSession.token_id)
        .where(
            ConsoleSession.id == _digest(secret),
            ConsoleSession.expires_at > utcnow(),
            ApiToken.revoked_at.is_(None),
            ApiToken.tenant_id == ConsoleSession.tenant_id,
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def delete_session(session: Session, secret: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == _digest(secret)))


def live_token(session: Session, token: str) -> ApiToken | None:
    """The unrevoked token row for a token's text, or None."""
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None)))


def get_draft(session: Session, *, tenant_id: int, name: str) -> ConsoleDraft | None:
    return session.scalar(select(ConsoleDraft).where(ConsoleDraft.tenant_id == tenant_id, ConsoleDraft.name == name))


def put_draft(
    session: Session, *, tenant_id: int, name: str, document: dict[str, Any], base_version: int | None
) -> ConsoleDraft:
    """Create or replace the set's draft."""
    row = get_draft(session, tenant_id=tenant_id, name=name)
    if row is None:
        row = ConsoleDraft(tenant_id=tenant_id, name=name, base_version=base_version)
        session.add(row)
    row.document, row.updated_at = document, utcnow()
    session.flush()
    return row


def delete_draft(session: Session, *, tenant_id: int, name: str) -> None:
    session.execute(delete(ConsoleDraft).where(ConsoleDraft.tenant_id == tenant_id, ConsoleDraft.name == name))


def draft_names(session: Session, *, tenant_id: int) -> list[str]:
    return list(session.scalars(select(ConsoleDraft.name).where(ConsoleDraft.tenant_id == tenant_id)))


def current_documents(session: Session, *, tenant_id: int) -> dict[str, tuple[int, dict[str, Any]]]:
    """``{set name: (current version, document)}`` of the tenant's live sets."""
    rows = session.execute(
        select(LabelSet.name, LabelSetVersion.version, LabelSetVersion.document)
        .join(LabelSetVersion, LabelSetVersion.label_set_id == LabelSet.id)
        .where(
            LabelSet.tenant_id == tenant_id,
            LabelSet.deleted_at.is_(None),
            LabelSetVersion.version == LabelSet.current_version,
        )
    )
    return {name: (version, document) for name, version, document in rows}


def jobs_since(session: Session, *, tenant_id: int, since: dt.datetime) -> dict[str, int]:
    """Jobs per label-set name created since ``since``."""
    rows = session.execute(
        select(Job.label_set_name, func.count())
        .where(Job.tenant_id == tenant_id, Job.created_at >= since)
        .group_by(Job.label_set_name)
    )
    return {name: int(n) for name, n in rows}


def recent_jobs(session: Session, *, tenant_id: int, label_set: str, limit: int) -> list[Job]:
    """The set's newest finished jobs (done), newest first."""
    return list(
        session.scalars(
            select(Job)
            .where(Job.tenant_id == tenant_id, Job.label_set_name == label_set, Job.status == "done")
            .order_by(Job.created_at.desc(), Job.id.desc())
            .limit(limit)
        )
    )


def version_authors(session: Session, *, tenant_id: int, label_set_id: int) -> dict[int, str | None]:
    rows = session.execute(
        select(LabelSetVersion.version, LabelSetVersion.created_by).where(
            LabelSetVersion.tenant_id == tenant_id, LabelSetVersion.label_set_id == label_set_id
        )
    )
    return {version: who for version, who in rows}


def delivery_counts_since(session: Session, *, tenant_id: int, since: dt.datetime) -> dict[int, dict[str, int]]:
    """``{integration id: {status: deliveries created since ``since``}}``."""
    rows = session.execute(
        select(Delivery.integration_id, Delivery.status, func.count())
        .where(Delivery.tenant_id == tenant_id, Delivery.created_at >= since)
        .group_by(Delivery.integration_id, Delivery.status)
    )
    out: dict[int, dict[str, int]] = {}
    for integration_id, status, n in rows:
        out.setdefault(integration_id, {})[status] = int(n)
    return out


def last_errors(session: Session, *, tenant_id: int) -> dict[int, tuple[str, dt.datetime]]:
    """Per integration, the newest delivery's error that has one, and when that delivery was made."""
    newest = (
        select(Delivery.integration_id, func.max(Delivery.created_at).label("at"))
        .where(Delivery.tenant_id == tenant_id, Delivery.last_error.is_not(None))
        .group_by(Delivery.integration_id)
        .subquery()
    )
    rows = session.execute(
        select(Delivery.integration_id, Delivery.last_error, Delivery.created_at).join(
            newest, (newest.c.integration_id == Delivery.integration_id) & (newest.c.at == Delivery.created_at)
        )
    )
    return {integration_id: (error, at) for integration_id, error, at in rows}


def dead_deliveries(session: Session, *, tenant_id: int, limit: int) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.tenant_id == tenant_id, Delivery.status == "dead")
            .order_by(Delivery.created_at.desc())
            .limit(limit)
        )
    )


def integrations_by_id(session: Session, *, tenant_id: int) -> dict[int, Integration]:
    rows = session.scalars(select(Integration).where(Integration.tenant_id == tenant_id).order_by(Integration.name))
    return {row.id: row for row in rows}
