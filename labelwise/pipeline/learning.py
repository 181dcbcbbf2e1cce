"""Corrections: a user's label for a job becomes an example of that label in the label set's next version."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from labelwise.errors import ConflictError, InvalidInputError, NotFoundError
from labelwise.labelset import MAX_EXAMPLE_CHARS, MAX_EXAMPLES, LabelSetDocument
from labelwise.models import jobs, labelsets
from labelwise.models.tables import utcnow


def record_feedback(
    session: Session,
    *,
    tenant_id: int,
    job_id: str,
    label: str,
    text: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Store the correct label of a done job and add its text to that label's examples (a new version).

    ``text`` stands in for a job that no longer keeps its own (past retention, or privacy mode). The same
    correction again changes nothing. Raises NotFoundError (job or label set), ConflictError (job not
    done, or its text gone and no ``text`` given) and InvalidInputError (label not in the label set's
    current version).
    """
    job = jobs.get_job(session, job_id, tenant_id=tenant_id)
    if job.status != "done":
        raise ConflictError(f"job {job_id!r} is {job.status}; only done jobs take feedback")
    example = text or job.text
    if example is None:
        raise ConflictError(
            f"job {job_id!r} no longer keeps its text (retention or privacy mode); send the text with the label"
        )
    # Read the document under the set's lock and write on top of exactly what was read: an edit made
    # meanwhile is either seen here or waited for, never overwritten (compare-and-set on the version).
    label_set = labelsets.lock_label_set(session, tenant_id=tenant_id, name=job.label_set_name)
    if label_set.current_version is None:
        raise NotFoundError(f"label set {job.label_set_name!r} has no version")
    current = labelsets.get_version(
        session, tenant_id=tenant_id, label_set_id=label_set.id, version=label_set.current_version
    )
    doc = LabelSetDocument.model_validate(current.document)
    if label not in {x.name for x in doc.labels}:
        raise InvalidInputError(f"label {label!r} is not in label set {doc.name!r}", field="label")
    job.feedback_label, job.feedback_at = label, utcnow()
    version, created = labelsets.apply_document(
        session,
        tenant_id=tenant_id,
        doc=with_example(doc, label, example),
        created_by=created_by,
        expected_version=current.version,
    )
    return {
        "job_id": job.id,
        "label": label,
        "label_set": doc.name,
        "label_set_version": version.version,
        "new_version": created,
    }


def with_example(doc: LabelSetDocument, label: str, text: str) -> LabelSetDocument:
    """``doc`` with ``text`` as the newest example of ``label`` (the oldest dropped past the limit)."""
    example = " ".join(text.split())[:MAX_EXAMPLE_CHARS]
    labels = []
    for item in doc.labels:
        if item.name == label and example not in item.examples:
            item = item.model_copy(update={"examples": [*item.examples, example][-MAX_EXAMPLES:]})
        labels.append(item)
    return doc.model_copy(update={"labels": labels})
