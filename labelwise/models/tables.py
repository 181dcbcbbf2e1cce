"""SQLAlchemy 2.0 typed tables. Every tenant-owned table carries ``tenant_id``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on the way out, whatever the backend keeps (SQLite keeps naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    retention_days: Mapped[int | None] = mapped_column(Integer)  # NULL: LABELWISE_RETENTION_DAYS
    privacy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # no text in SQL
    purged_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # finished jobs before it: no text


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class LabelSet(Base):
    __tablename__ = "label_sets"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    current_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    traffic_seen: Mapped[int] = mapped_column(Integer, default=0)  # messages classified with this set, ever


class LabelSetVersion(Base):
    """An immutable version of a label set's document."""

    __tablename__ = "label_set_versions"
    __table_args__ = (UniqueConstraint("label_set_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    label_set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(
        String(100)
    )  # "console lw_AbCdEfG", "api ...", "cli"; NULL before 0010


class Job(Base):
    """One message to classify. ``tenant_id`` is NULL only for a message naming an unknown tenant."""

    __tablename__ = "jobs"
    __table_args__ = (
        # the key names one job; a message repeating it with another body is a failed job of its own
        Index(
            "uq_jobs_tenant_key",
            "tenant_id",
            "idempotency_key",
            unique=True,
            sqlite_where=sql("duplicate_of IS NULL"),
            postgresql_where=sql("duplicate_of IS NULL"),
        ),
        Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
        Index(
            "ix_jobs_open",
            "status",
            "created_at",
            sqlite_where=sql("status IN ('queued', 'running')"),
            postgresql_where=sql("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    tenant_name: Mapped[str] = mapped_column(String(200))
    label_set_name: Mapped[str] = mapped_column(String(200))
    label_set_version_id: Mapped[int | None] = mapped_column(ForeignKey("label_set_versions.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    text: Mapped[str | None] = mapped_column(Text)  # NULL: purged (retention) or never stored (privacy)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)
    reply_to: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    feedback_label: Mapped[str | None] = mapped_column(String(100))
    feedback_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # last publish; NULL: not yet
    duplicate_of: Mapped[str | None] = mapped_column(String(64))  # the job that owns this job's key
    classifications: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # results stored


class JobAlias(Base):
    """A message that repeated a job's idempotency key with the same body: its task id names that job."""

    __tablename__ = "job_aliases"
    __table_args__ = (Index("ix_job_aliases_job", "job_id"),)

    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Lease(Base):
    """A periodic duty (the reconciler) that one process at a time performs, until ``expires_at``."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Integration(Base):
    """A tenant's named connection to a platform; ``public_id`` goes into inbound hook URLs."""

    __tablename__ = "integrations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name"),
        Index("ix_integrations_inbound_key", "inbound_key", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    label_set: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    secrets: Mapped[str] = mapped_column(Text)  # Fernet token of a JSON object
    # what routes a hook without the integration's id to it (Slack: "slack:{api_app_id}:{team_id}"); unique
    inbound_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Delivery(Base):
    """One result going to one integration; ``id`` is stable across attempts so receivers can dedupe."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("job_id", "integration_id"),
        Index("ix_deliveries_tenant_status", "tenant_id", "status"),
        Index("ix_deliveries_created", "created_at"),  # the purge of settled deliveries
        Index(
            "ix_deliveries_open",
            "status",
            "next_attempt_at",
            sqlite_where=sql("status IN ('pending', 'retrying')"),
            postgresql_where=sql("status IN ('pending', 'retrying')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    target: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, retrying, delivered, dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    steps_done: Mapped[list[str]] = mapped_column(JSONType, default=list)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # last publish of labelwise.deliver
    leased_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())  # an attempt is under way until then


class InboundEvent(Base):
    """Platform event ids already accepted, so a platform's retries start nothing twice."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("integration_id", "event_id"),
        Index("ix_inbound_events_created", "created_at"),  # the purge of old event ids
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(200))
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TextEmbedding(Base):
    """Label texts' embeddings by (model, text hash), so a restarted or new worker does not re-embed them
    and a new version re-embeds only the texts it changed."""

    __tablename__ = "text_embeddings"

    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TrafficVector(Base):
    """Recent messages of a label set as vectors (float16), no text: what refines its label vectors."""

    __tablename__ = "traffic_vectors"
    __table_args__ = (Index("ix_traffic_set_model", "label_set_id", "model_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_set_id: Mapped[int] = mapped_column(ForeignKey("label_sets.id", ondelete="CASCADE"))
    model_id: Mapped[str] = mapped_column(String(200))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class WorkerHeartbeat(Base):
    """One row per running worker process, refreshed while its consumer runs: /readyz asks whether any
    worker was seen recently. A clean shutdown deletes the row; a killed worker's row goes stale."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # Celery node name and pid
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)  # classify messages handled since start


class ConsoleSession(Base):
    """A signed-in console session, made from a tenant token; it ends with the token (revoked) or at
    ``expires_at``. ``id`` is the SHA-256 of the cookie's secret, never the secret itself."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ConsoleDraft(Base):
    """The unsaved edit of a label set in the console, one per (tenant, set): the editor's form state
    as JSON (it may be invalid while being typed); saving it makes the next version."""

    __tablename__ = "console_drafts"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    base_version: Mapped[int | None] = mapped_column(Integer)  # the version the draft started from
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Preview(Base):
    """Texts classified by the worker against an inline document and/or a set's current version;
    the API waits for ``status`` to leave queued (no Celery result backend)."""

    __tablename__ = "previews"
    __table_args__ = (Index("ix_previews_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    label_set: Mapped[str | None] = mapped_column(String(64))  # compare with its current version
    document: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the draft, validated
    texts: Mapped[list[str]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, done, failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class Evaluation(Base):
    """Labelled messages scored by the worker with a draft and with a set's current version."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    label_set: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the draft
    current_version: Mapped[int | None] = mapped_column(Integer)
    current_document: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    rows: Mapped[list[dict[str, str]]] = mapped_column(JSONType)  # [{"text", "label"}]
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued, running, done, failed
    done: Mapped[int] = mapped_column(Integer, default=0)  # rows scored so far (both sides count)
    total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # {"draft": report, "current": report}
    figure_draft: Mapped[bytes | None] = mapped_column(LargeBinary)  # PNG, as labelwise eval --plot
    figure_current: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
