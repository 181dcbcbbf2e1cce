"""Queries of the data lifecycle: a tenant's deletion, the retention purge, and what they count.

A tenant's rows live in every table that has ``tenant_id``, and in three that reach the tenant through
a parent: ``traffic_vectors`` (its label sets), ``inbound_events`` (its integrations) and
``text_embeddings`` (vectors of its label texts, keyed by the texts' SHA-256: a shared cache with no
owner, so a deletion drops the hashes of the tenant's label texts and another tenant with the same text
just embeds it again). Jobs of a message that named the tenant before it existed carry no ``tenant_id``
but its name (``tenant_name``); they go too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from sqlalchemy import Select, delete, func, null, or_, select, text, update
from sqlalchemy.orm import Session

from labelwise.models.tables import (
    ApiToken,
    ConsoleDraft,
    ConsoleSession,
    Delivery,
    Evaluation,
    InboundEvent,
    Integration,
    Job,
    JobAlias,
    LabelSet,
    LabelSetVersion,
    Preview,
    Tenant,
    TextEmbedding,
    TrafficVector,
)

OPEN_JOB = ("queued", "running")


def _tenant_jobs(tenant: Tenant) -> Any:
    return or_(Job.tenant_id == tenant.id, (Job.tenant_id.is_(None)) & (Job.tenant_name == tenant.name))


def delete_jobs_batch(session: Session, tenant: Tenant, *, limit: int) -> int:
    """Delete up to ``limit`` of the tenant's jobs with their deliveries and aliases; how many jobs went."""
    ids = list(session.scalars(select(Job.id).where(_tenant_jobs(tenant)).limit(limit)))
    if not ids:
        return 0
    session.execute(delete(Delivery).where(Delivery.job_id.in_(ids)))  # (job_id, integration_id) index
    session.execute(delete(JobAlias).where(JobAlias.job_id.in_(ids)))  # ix_job_aliases_job
    session.execute(delete(Job).where(Job.id.in_(ids)))
    return len(ids)


def revoke_access(session: Session, tenant: Tenant) -> int:
    """End the tenant's console sessions and tokens first, so nothing new arrives while it is deleted; and
    drop its inbound event ids (by integration: ``inbound_events.job_id`` has no index to go by per job)."""
    integration_ids = select(Integration.id).where(Integration.tenant_id == tenant.id).scalar_subquery()
    events = session.execute(delete(InboundEvent).where(InboundEvent.integration_id.in_(integration_ids))).rowcount
    session.execute(delete(ConsoleSession).where(ConsoleSession.tenant_id == tenant.id))
    session.execute(delete(ApiToken).where(ApiToken.tenant_id == tenant.id))
    return int(events)  # inbound event ids deleted


def delete_tenant_rows(session: Session, tenant: Tenant) -> dict[str, int]:
    """Delete every remaining row of the tenant, the tenant row last; ``{table: rows deleted}``.

    Jobs should be gone already (``delete_jobs_batch``); any left (a message that arrived meanwhile)
    go here too."""
    set_ids = select(LabelSet.id).where(LabelSet.tenant_id == tenant.id).scalar_subquery()
    integration_ids = select(Integration.id).where(Integration.tenant_id == tenant.id).scalar_subquery()
    hashes = _label_text_hashes(session, tenant)
    counts: dict[str, int] = {}
    steps: list[tuple[str, Any]] = [
        ("deliveries", delete(Delivery).where(Delivery.tenant_id == tenant.id)),
        ("job_aliases", delete(JobAlias).where(JobAlias.tenant_id == tenant.id)),
        ("inbound_events", delete(InboundEvent).where(InboundEvent.integration_id.in_(integration_ids))),
        ("jobs", delete(Job).where(_tenant_jobs(tenant))),
        ("traffic_vectors", delete(TrafficVector).where(TrafficVector.label_set_id.in_(set_ids))),
        ("label_set_versions", delete(LabelSetVersion).where(LabelSetVersion.tenant_id == tenant.id)),
        ("label_sets", delete(LabelSet).where(LabelSet.tenant_id == tenant.id)),
        ("integrations", delete(Integration).where(Integration.tenant_id == tenant.id)),
        ("previews", delete(Preview).where(Preview.tenant_id == tenant.id)),
        ("evaluations", delete(Evaluation).where(Evaluation.tenant_id == tenant.id)),
        ("console_drafts", delete(ConsoleDraft).where(ConsoleDraft.tenant_id == tenant.id)),
        ("console_sessions", delete(ConsoleSession).where(ConsoleSession.tenant_id == tenant.id)),
        ("api_tokens", delete(ApiToken).where(ApiToken.tenant_id == tenant.id)),
    ]
    for table, statement in steps:
        counts[table] = session.execute(statement.execution_options(synchronize_session=False)).rowcount
    counts["text_embeddings"] = 0
    for start in range(0, len(hashes), 500):
        chunk = hashes[start : start + 500]
        counts["text_embeddings"] += session.execute(
            delete(TextEmbedding).where(TextEmbedding.text_hash.in_(chunk))
        ).rowcount
    counts["tenants"] = session.execute(delete(Tenant).where(Tenant.id == tenant.id)).rowcount
    return counts


def _label_text_hashes(session: Session, tenant: Tenant) -> list[str]:
    """SHA-256 of every label text of every version of the tenant's label sets (what text_embeddings keys)."""
    from labelwise.classify.labels import label_texts
    from labelwise.labelset import LabelSetDocument

    hashes: set[str] = set()
    for document in session.scalars(select(LabelSetVersion.document).where(LabelSetVersion.tenant_id == tenant.id)):
        try:
            doc = LabelSetDocument.model_validate(document)
        except ValueError:  # a document stored under older rules: nothing embedded from it is recognisable
            continue
        for label in doc.labels:
            hashes.update(hashlib.sha256(t.encode()).hexdigest() for t in label_texts(label))
    return sorted(hashes)


def count_rows(session: Session, statement: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(statement.subquery())) or 0)


# -- retention ---------------------------------------------------------------------------------------


def tenants_for_purge(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.id)))


def oldest_open_job(session: Session, *, tenant_id: int, before: dt.datetime) -> dt.datetime | None:
    """When the tenant's oldest job still queued or running before ``before`` was created (it keeps its text)."""
    return session.scalar(
        select(func.min(Job.created_at)).where(
            Job.status.in_(OPEN_JOB), Job.created_at < before, Job.tenant_id == tenant_id
        )
    )


def without_waiting_for_disk(session: Session) -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL to reach the disk
    (``SET LOCAL synchronous_commit = off``); the WAL writer flushes it within a fraction of a second. A
    crash may lose the last such commits, whole (never half of one): for the purge, a batch done again
    on the next pass. Its flushes no longer take turns with the workers' commits."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL synchronous_commit = off"))


def purge_texts_batch(
    session: Session, *, tenant_id: int, after: dt.datetime | None, before: dt.datetime, limit: int
) -> tuple[int, dt.datetime | None]:
    """Remove text and metadata of up to ``limit`` finished jobs of the tenant created in [after, before),
    oldest first; returns how many and the created_at of the last one (None when none)."""
    query = select(Job.id, Job.created_at).where(
        Job.tenant_id == tenant_id,
        Job.created_at < before,
        Job.status.not_in(OPEN_JOB),
        or_(Job.text.is_not(None), Job.metadata_.is_not(None)),  # rows on the watermark itself: done already
    )
    if after is not None:
        query = query.where(Job.created_at >= after)
    rows = list(session.execute(query.order_by(Job.created_at).limit(limit)))
    if not rows:
        return 0, None
    session.execute(
        update(Job)
        .where(Job.id.in_([r.id for r in rows]))
        .values(text=None, metadata_=null())
        .execution_options(synchronize_session=False)
    )
    return len(rows), rows[-1].created_at


def purge_orphan_jobs(session: Session, *, before: dt.datetime, limit: int) -> int:
    """Remove text and metadata of failed jobs that named no known tenant, created before ``before``."""
    ids = list(
        session.scalars(
            select(Job.id).where(Job.tenant_id.is_(None), Job.created_at < before, Job.text.is_not(None)).limit(limit)
        )
    )
    if ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(ids))
            .values(text=None, metadata_=null())
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def prune_deliveries(session: Session, *, before: dt.datetime, limit: int) -> int:
    """Delete up to ``limit`` settled deliveries (delivered or dead) created before ``before``."""
    ids = list(
        session.scalars(
            select(Delivery.id)
            .where(Delivery.status.in_(("delivered", "dead")), Delivery.created_at < before)
            .limit(limit)
        )
    )
    if ids:
        session.execute(delete(Delivery).where(Delivery.id.in_(ids)))
    return len(ids)


def prune_console_data(session: Session, *, tenant_id: int, before: dt.datetime) -> int:
    """Delete the tenant's console previews and evaluations (texts an admin tried) created before ``before``."""
    gone = session.execute(delete(Preview).where(Preview.tenant_id == tenant_id, Preview.created_at < before)).rowcount
    gone += session.execute(
        delete(Evaluation).where(Evaluation.tenant_id == tenant_id, Evaluation.created_at < before)
    ).rowcount
    return int(gone)


def set_purged_before(session: Session, *, tenant_id: int, when: dt.datetime) -> None:
    session.execute(update(Tenant).where(Tenant.id == tenant_id).values(purged_before=when))


def texts_older_than(session: Session, *, tenant_id: int, before: dt.datetime) -> int:
    """How many of the tenant's jobs created before ``before`` still keep a text or metadata."""
    return count_rows(
        session,
        select(Job.id).where(
            Job.tenant_id == tenant_id,
            Job.created_at < before,
            or_(Job.text.is_not(None), Job.metadata_.is_not(None)),
        ),
    )


def prune_inbound_events(session: Session, *, before: dt.datetime, limit: int) -> int:
    """Delete up to ``limit`` inbound event ids accepted before ``before`` (past every platform's retries)."""
    ids = list(session.scalars(select(InboundEvent.id).where(InboundEvent.created_at < before).limit(limit)))
    if ids:
        session.execute(delete(InboundEvent).where(InboundEvent.id.in_(ids)))
    return len(ids)
