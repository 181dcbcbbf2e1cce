"""Previews and evaluations: work the API hands the worker, whose results come back through SQL."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, load_only

from labelwise.errors import NotFoundError
from labelwise.models.tables import Evaluation, Preview, utcnow

PREVIEW_KEEP_S = 3600  # previews are read once, right after they are made
EVALUATIONS_KEEP = 20  # per tenant, newest


def add_preview(
    session: Session, *, tenant_id: int, label_set: str | None, document: dict[str, Any] | None, texts: list[str]
) -> Preview:
    """A queued preview (flushed); previews older than an hour are pruned on the way."""
    now = utcnow()
    session.execute(delete(Preview).where(Preview.created_at < now - dt.timedelta(seconds=PREVIEW_KEEP_S)))
    row = Preview(
        id="pv_" + uuid.uuid4().hex,
        tenant_id=tenant_id,
        label_set=label_set,
        document=document,
        texts=texts,
        status="queued",
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_preview(session: Session, preview_id: str, *, tenant_id: int | None = None) -> Preview:
    """The preview, restricted to ``tenant_id`` when given; raises NotFoundError."""
    row = session.get(Preview, preview_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFoundError(f"unknown preview {preview_id!r}")
    return row


def preview_status(session: Session, preview_id: str) -> str | None:
    return session.scalar(select(Preview.status).where(Preview.id == preview_id))


def finish_preview(row: Preview, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    row.status = "failed" if error else "done"
    row.result, row.error, row.finished_at = result, error, utcnow()


def add_evaluation(session: Session, **fields: Any) -> Evaluation:
    """A queued evaluation (flushed); only the tenant's newest EVALUATIONS_KEEP are kept."""
    row = Evaluation(id="ev_" + uuid.uuid4().hex, status="queued", done=0, created_at=utcnow(), **fields)
    session.add(row)
    session.flush()
    keep = select(Evaluation.id).where(Evaluation.tenant_id == row.tenant_id)
    keep = keep.order_by(Evaluation.created_at.desc()).limit(EVALUATIONS_KEEP)
    session.execute(
        delete(Evaluation).where(Evaluation.tenant_id == row.tenant_id, Evaluation.id.not_in(keep.scalar_subquery()))
    )
    return row


def get_evaluation(session: Session, evaluation_id: str, *, tenant_id: int | None = None) -> Evaluation:
    """The evaluation, restricted to ``tenant_id`` when given; raises NotFoundError."""
    row = session.get(Evaluation, evaluation_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFoundError(f"unknown evaluation {evaluation_id!r}")
    return row


def list_evaluations(session: Session, *, tenant_id: int, label_set: str) -> list[Evaluation]:
    return list(
        session.scalars(
            select(Evaluation)
            .options(load_only(Evaluation.id, Evaluation.status, Evaluation.total, Evaluation.created_at))
            .where(Evaluation.tenant_id == tenant_id, Evaluation.label_set == label_set)
            .order_by(Evaluation.created_at.desc())
        )
    )
