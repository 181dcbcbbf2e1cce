"""Previews: texts classified by the worker against an inline, unsaved label-set document (a draft)
and/or a set's current version, with the encoder, label-cache code, stored label-text embeddings
and scoring rules that production messages use.

The API records the request (a ``previews`` row), commits, enqueues ``labelwise.preview`` with the
row's id, and waits for the row to finish; the worker fills in the result. No Celery result backend.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelCache
from labelwise.classify.scoring import Scored, score_documents
from labelwise.classify.stored import StoredEncoder
from labelwise.errors import InvalidInputError, LabelwiseError, NotFoundError
from labelwise.evaluate import eval_version_id
from labelwise.labelset import LabelSetDocument
from labelwise.models import labelsets, previews
from labelwise.models.tables import Preview
from labelwise.pipeline.common import database_errors
from labelwise.pipeline.traffic import Refiner
from labelwise.pipeline.working import version_index

log = logging.getLogger(__name__)

MAX_PREVIEW_TEXTS = 20


def check_texts(texts: list[str], *, max_text_chars: int, limit: int, field: str = "texts") -> None:
    """Raises InvalidInputError naming the first empty or over-long text, or too many texts."""
    if not texts or len(texts) > limit:
        raise InvalidInputError(f"give 1 to {limit} texts, not {len(texts)}", field=field)
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidInputError("empty text", field=f"{field}.{i}")
        if "\x00" in text:
            raise InvalidInputError("the text contains a NUL character", field=f"{field}.{i}")
        if len(text) > max_text_chars:
            raise InvalidInputError(f"text over {max_text_chars} characters", field=f"{field}.{i}")


def request_preview(
    session: Session,
    *,
    tenant_id: int,
    document: LabelSetDocument | None,
    label_set: str | None,
    texts: list[str],
    max_text_chars: int,
) -> Preview:
    """Record a preview for the worker (the caller commits, then enqueues).

    ``document``: score against this draft; ``label_set``: also against that set's current version
    (NotFoundError when the tenant has no such set). At least one of the two.
    """
    if document is None and label_set is None:
        raise InvalidInputError("give a document, a label_set, or both", field="document")
    check_texts(texts, max_text_chars=max_text_chars, limit=MAX_PREVIEW_TEXTS)
    if label_set is not None:
        labelsets.current_version_ref(session, tenant_id=tenant_id, name=label_set)
    data = document.model_dump(mode="json") if document is not None else None
    return previews.add_preview(session, tenant_id=tenant_id, label_set=label_set, document=data, texts=texts)


def preview_view(row: Preview) -> dict[str, Any]:
    """The preview as the API answers it; ``draft``/``current`` hold one result per text when done."""
    result = row.result or {}
    return {
        "preview_id": row.id,
        "status": row.status,
        "label_set": row.label_set,
        "model": result.get("model"),
        "texts": row.texts,
        "draft": result.get("draft"),
        "current": result.get("current"),
        "current_version": result.get("current_version"),
        "error": row.error,
    }


def read_preview(sessions: sessionmaker[Session], preview_id: str, *, tenant_id: int) -> dict[str, Any]:
    with database_errors(), sessions() as session:
        return preview_view(previews.get_preview(session, preview_id, tenant_id=tenant_id))


def preview_finished(sessions: sessionmaker[Session], preview_id: str) -> bool:
    with database_errors(), sessions() as session:
        return previews.preview_status(session, preview_id) in ("done", "failed", None)


def run_preview(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    drafts: LabelCache,
    *,
    preview_id: str,
    refiner: Refiner | None = None,
) -> str:
    """The worker's half: score the texts, store the result; returns the preview's status.

    Draft vectors are cached in ``drafts`` (by the document's content hash, apart from the versions
    production uses, so typing in an editor never evicts them); label texts embedded before come from
    SQL. A preview already finished (a redelivered message) is left as it is.
    """
    with database_errors(), sessions() as session:
        row = previews.get_preview(session, preview_id)
        if row.status != "queued":
            return row.status
        tenant_id, label_set, document, texts = row.tenant_id, row.label_set, row.document, list(row.texts)
    result: dict[str, Any] | None = None
    error = None
    try:
        doc = LabelSetDocument.model_validate(document) if document is not None else None
        result = _score_preview(
            sessions,
            classifier,
            drafts,
            refiner=refiner,
            tenant_id=tenant_id,
            label_set=label_set,
            document=doc,
            texts=texts,
        )
    except LabelwiseError as e:
        error = e.message
    with database_errors(), sessions.begin() as session:
        row = previews.get_preview(session, preview_id)
        previews.finish_preview(row, result=result, error=error)
        return row.status


def _score_preview(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    drafts: LabelCache,
    *,
    refiner: Refiner | None,
    tenant_id: int,
    label_set: str | None,
    document: LabelSetDocument | None,
    texts: list[str],
) -> dict[str, Any]:
    encoded = classifier.encode(texts)  # long texts in windows, as messages are
    label_encoder = StoredEncoder(classifier.encoder, sessions)
    out: dict[str, Any] = {"model": classifier.model_id, "draft": None, "current": None, "current_version": None}
    if document is not None:
        index = drafts.get_or_build(eval_version_id(document), document, label_encoder)
        out["draft"] = [scored_view(s) for s in score_documents(index, encoded, top_k=len(index.names))]
    if label_set is not None:
        try:
            with sessions() as session:
                version_id, version, label_set_id, seen = labelsets.current_version_ref(
                    session, tenant_id=tenant_id, name=label_set
                )
        except NotFoundError:
            return out  # deleted since the request: the draft alone
        index = version_index(
            classifier,
            label_encoder,
            sessions=sessions,
            refiner=refiner,
            version_id=version_id,
            label_set_id=label_set_id,
            seen=seen,
        )
        out["current"] = [scored_view(s) for s in score_documents(index, encoded, top_k=len(index.names))]
        out["current_version"] = version
    return out


def scored_view(scored: Scored) -> dict[str, Any]:
    """Every label's score, best first, the chosen labels, whether the set abstained, and how the text was
    read (windows, truncated, evidence), as in a job's result."""
    return {
        "labels": scored.labels,
        "chosen": scored.chosen,
        "abstained": scored.abstained,
        "windows": scored.windows,
        "truncated": scored.truncated,
        "evidence": scored.evidence,
    }
