"""What the console shows of a tenant's traffic: a set's recent messages (to correct them or to turn
them into examples) and the integrations' deliveries (to replay the dead ones)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from labelwise.console import forms
from labelwise.errors import InvalidInputError
from labelwise.models import console, jobs, labelsets
from labelwise.models.tables import Job, utcnow
from labelwise.pipeline.consoling import editor_state
from labelwise.pipeline.delivering import replay_deliveries

SCAN = 500  # newest jobs of a set looked at for one page of filtered messages
LOW_MARGIN = 0.05  # "low margin": the two best scores closer than this (or than the set's margin, if larger)


def _margin(job: Job) -> float | None:
    labels = (job.result or {}).get("labels") or []
    return float(labels[0]["score"]) - float(labels[1]["score"]) if len(labels) > 1 else None


def message_view(job: Job) -> dict[str, Any]:
    result = job.result or {}
    return {
        "job_id": job.id,
        "text": job.text,
        "created_at": job.created_at,
        "version": result.get("label_set_version"),
        "labels": result.get("labels", []),
        "chosen": result.get("chosen", []),
        "abstained": bool(result.get("abstained")),
        "margin": _margin(job),
        "feedback": job.feedback_label,
    }


def recent_messages(
    session: Session,
    *,
    tenant_id: int,
    name: str,
    label: str | None = None,
    abstained: bool = False,
    low_margin: bool = False,
    limit: int = 50,
) -> dict[str, Any]:
    """The set's newest classified messages (of the last SCAN), filtered: ``label`` chosen (or ranked
    first when abstaining), ``abstained`` only, ``low_margin`` only. Also the current labels, for the
    correction buttons. NotFoundError for a set the tenant does not have."""
    current = labelsets.current_version(session, tenant_id=tenant_id, name=name)
    names = [x["name"] for x in current.document["labels"]]
    threshold = max(LOW_MARGIN, float(current.document.get("margin") or 0.0))
    picked = []
    for job in console.recent_jobs(session, tenant_id=tenant_id, label_set=name, limit=SCAN):
        view = message_view(job)
        top = view["labels"][0]["name"] if view["labels"] else None
        if label and label not in view["chosen"] and top != label:
            continue
        if abstained and not view["abstained"]:
            continue
        if low_margin and (view["margin"] is None or view["margin"] >= threshold):
            continue
        picked.append(view)
        if len(picked) >= limit:
            break
    return {"messages": picked, "labels": names, "version": current.version, "low_margin": threshold}


def example_to_draft(session: Session, *, tenant_id: int, job_id: str, label: str) -> str:
    """Add a message's text to the examples of ``label`` in its set's draft (made from the current
    version when there is none); returns the set's name. InvalidInputError when the draft has no
    such label; NotFoundError for another tenant's job."""
    job = jobs.get_job(session, job_id, tenant_id=tenant_id)
    if job.text is None:
        raise InvalidInputError("this message's text is no longer kept (retention or privacy mode)", field="job")
    state = editor_state(session, tenant_id=tenant_id, name=job.label_set_name)
    draft = state["draft"]
    if label not in [x["name"] for x in draft["labels"]]:
        raise InvalidInputError(f"label {label!r} is not in the draft", field="label")
    console.put_draft(
        session,
        tenant_id=tenant_id,
        name=job.label_set_name,
        document=forms.with_example(draft, label, job.text),
        base_version=state["base_version"],
    )
    return job.label_set_name


def integrations_overview(session: Session, *, tenant_id: int, dead_limit: int = 50) -> list[dict[str, Any]]:
    """Each integration with its deliveries per status in the last 24 h, its last error and its dead
    deliveries (newest first)."""
    rows = console.integrations_by_id(session, tenant_id=tenant_id)
    counts = console.delivery_counts_since(session, tenant_id=tenant_id, since=utcnow() - dt.timedelta(hours=24))
    errors = console.last_errors(session, tenant_id=tenant_id)
    dead: dict[int, list[dict[str, Any]]] = {}
    for d in console.dead_deliveries(session, tenant_id=tenant_id, limit=dead_limit):
        dead.setdefault(d.integration_id, []).append(
            {"delivery_id": d.id, "job_id": d.job_id, "attempts": d.attempts, "error": d.last_error, "at": d.created_at}
        )
    return [
        {
            "name": row.name,
            "kind": row.kind,
            "label_set": row.label_set,
            "counts": counts.get(row.id, {}),
            "last_error": errors.get(row.id),
            "dead": dead.get(row.id, []),
        }
        for row in rows.values()
    ]


def replay(session: Session, *, tenant_id: int, ids: list[str]) -> list[str]:
    """Dead deliveries of this tenant made pending again (all of them without ids); enqueue them after
    the commit. ConflictError for one that is not dead, NotFoundError for another tenant's."""
    return replay_deliveries(session, tenant_id=tenant_id, ids=ids)
