"""Evaluations: labelled messages scored by the worker with a draft and with a set's current version,
side by side, computing what ``labelwise eval`` prints (and its ``--plot`` figure) for each.

Both sides are scored as ``labelwise eval`` scores: from the document, without the worker's traffic
refinement, so the comparison is like for like. Progress (rows scored) is written to SQL after every
batch; the console polls it.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from labelwise import evaluate
from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelCache
from labelwise.classify.stored import StoredEncoder
from labelwise.errors import InvalidInputError, LabelwiseError, NotFoundError
from labelwise.labelset import LabelSetDocument
from labelwise.models import labelsets, previews
from labelwise.models.tables import Evaluation, utcnow
from labelwise.pipeline.common import database_errors

EVAL_BATCH = 32  # rows per model call: progress moves every batch
SIDES = ("draft", "current")
_plot_lock = threading.Lock()  # pyplot keeps global state: one figure at a time per process


def parse_labelled(data: bytes, filename: str) -> list[evaluate.Row]:
    """Rows of an uploaded CSV (``text,label`` header) or JSONL file, read as ``labelwise eval`` reads
    files; raises InvalidInputError naming the file (as uploaded) and the line."""
    suffix = ".jsonl" if filename.lower().endswith((".jsonl", ".ndjson", ".json")) else ".csv"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"upload{suffix}"
        path.write_bytes(data)
        try:
            return evaluate.read_labelled(path)
        except InvalidInputError as e:
            raise InvalidInputError(e.message.replace(str(path), filename or "upload"), field="data") from e


def request_evaluation(
    session: Session,
    *,
    tenant_id: int,
    label_set: str,
    document: LabelSetDocument | None,
    rows: list[evaluate.Row],
    max_rows: int,
    max_text_chars: int,
) -> Evaluation:
    """Record an evaluation for the worker (the caller commits, then enqueues).

    The set's current version (when it has one) is one side, ``document`` the other; NotFoundError
    when neither exists. InvalidInputError for no rows, too many, or an over-long text.
    """
    if not rows or len(rows) > max_rows:
        raise InvalidInputError(f"give 1 to {max_rows} labelled messages, not {len(rows)}", field="rows")
    for i, row in enumerate(rows):
        if len(row.text) > max_text_chars:
            raise InvalidInputError(f"text over {max_text_chars} characters", field=f"rows.{i}.text")
        if "\x00" in row.text or "\x00" in row.label:
            raise InvalidInputError("a NUL character", field=f"rows.{i}")
    try:
        current = labelsets.current_version(session, tenant_id=tenant_id, name=label_set)
    except NotFoundError:
        if document is None:
            raise
        current = None
    sides = (document is not None) + (current is not None)
    return previews.add_evaluation(
        session,
        tenant_id=tenant_id,
        label_set=label_set,
        document=document.model_dump(mode="json") if document is not None else None,
        current_version=current.version if current is not None else None,
        current_document=current.document if current is not None else None,
        rows=[{"text": r.text, "label": r.label} for r in rows],
        total=len(rows) * sides,
    )


def evaluation_view(row: Evaluation) -> dict[str, Any]:
    result = row.result or {}
    return {
        "evaluation_id": row.id,
        "label_set": row.label_set,
        "status": row.status,
        "done": row.done,
        "total": row.total,
        "current_version": row.current_version,
        "draft": result.get("draft"),
        "current": result.get("current"),
        "error": row.error,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


def read_evaluation(session: Session, *, tenant_id: int, evaluation_id: str) -> dict[str, Any]:
    """The tenant's evaluation as a view; raises NotFoundError."""
    return evaluation_view(previews.get_evaluation(session, evaluation_id, tenant_id=tenant_id))


def list_evaluations(session: Session, *, tenant_id: int, label_set: str) -> list[dict[str, Any]]:
    """The set's evaluations, newest first: id, status, size, when."""
    rows = previews.list_evaluations(session, tenant_id=tenant_id, label_set=label_set)
    return [{"evaluation_id": r.id, "status": r.status, "total": r.total, "created_at": r.created_at} for r in rows]


def run_evaluation(
    sessions: sessionmaker[Session], classifier: Classifier, drafts: LabelCache, *, evaluation_id: str
) -> str:
    """The worker's half: score every row with each side, store reports and figures; returns the status.

    An evaluation that is not queued (a redelivered message) is left as it is.
    """
    with database_errors(), sessions.begin() as session:
        row = previews.get_evaluation(session, evaluation_id)
        if row.status != "queued":
            return row.status
        row.status = "running"
        rows = [evaluate.Row(text=r["text"], label=r["label"]) for r in row.rows]
        docs = {"draft": row.document, "current": row.current_document}
    result: dict[str, Any] = {}
    figures: dict[str, bytes] = {}
    error = None
    try:
        for side in SIDES:
            if docs[side] is not None:
                doc = LabelSetDocument.model_validate(docs[side])
                result[side], figures[side] = _evaluate_side(sessions, classifier, drafts, doc, rows, evaluation_id)
    except LabelwiseError as e:
        error = e.message
    with database_errors(), sessions.begin() as session:
        row = previews.get_evaluation(session, evaluation_id)
        row.status, row.error, row.finished_at = ("failed" if error else "done"), error, utcnow()
        row.result = None if error else result
        row.figure_draft, row.figure_current = figures.get("draft"), figures.get("current")
        return row.status


def _evaluate_side(
    sessions: sessionmaker[Session],
    classifier: Classifier,
    drafts: LabelCache,
    doc: LabelSetDocument,
    rows: list[evaluate.Row],
    evaluation_id: str,
) -> tuple[dict[str, Any], bytes]:
    """``labelwise eval --sweep``'s report plus the confusion matrix, and ``--plot``'s PNG."""
    drafts.get_or_build(evaluate.eval_version_id(doc), doc, StoredEncoder(classifier.encoder, sessions))
    scorer = Classifier(encoder=classifier.encoder, top_k=classifier.top_k, cache=drafts, windower=classifier.windower)

    def progress(n: int) -> None:
        with database_errors(), sessions.begin() as session:
            previews.get_evaluation(session, evaluation_id).done += n

    outcomes = evaluate.predict(scorer, doc, rows, batch_size=EVAL_BATCH, on_batch=progress)
    report = evaluate.report(outcomes, doc, with_sweep=True)
    names, counts = evaluate.confusion(outcomes, doc)
    report["confusion"] = {"rows": names, "columns": [x.name for x in doc.labels], "counts": counts.tolist()}
    return report, figure(outcomes, doc)


def figure(outcomes: list[evaluate.Outcome], doc: LabelSetDocument) -> bytes:
    """The PNG ``labelwise eval --plot`` writes: threshold sweep and confusion heat map."""
    with tempfile.TemporaryDirectory() as tmp, _plot_lock:
        path = Path(tmp) / "eval.png"
        evaluate.plot(path, outcomes, doc)
        return path.read_bytes()


def evaluation_figure(session: Session, *, tenant_id: int, evaluation_id: str, side: str) -> bytes:
    """A side's PNG; NotFoundError when the evaluation is another tenant's, unfinished, or has no such side."""
    row = previews.get_evaluation(session, evaluation_id, tenant_id=tenant_id)
    data = {"draft": row.figure_draft, "current": row.figure_current}.get(side)
    if data is None:
        raise NotFoundError(f"evaluation {evaluation_id!r} has no {side} figure")
    return data
