"""Views: rows turned into the JSON shapes the API, the CLI and deliveries share."""

from __future__ import annotations

from typing import Any

from labelwise.classify.scoring import Scored
from labelwise.models.tables import Job


def job_view(job: Job) -> dict[str, Any]:
    """The normative result shape for any job, whatever its status."""
    result = job.result or {}
    return {
        "job_id": job.id,
        "status": job.status,
        "tenant": job.tenant_name,
        "label_set": job.label_set_name,
        "label_set_version": result.get("label_set_version"),
        "model": result.get("model"),
        "labels": result.get("labels", []),
        "chosen": result.get("chosen", []),
        "abstained": result.get("abstained", False),
        "error": job.error,
        "idempotency_key": job.idempotency_key,
        "metadata": job.metadata_,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "feedback": job.feedback_label,
        "warnings": result.get("warnings", []),
        "windows": result.get("windows"),
        "truncated": result.get("truncated"),
        "evidence": result.get("evidence", []),
    }


def to_result(scored: Scored, *, version: int, model: str) -> dict[str, Any]:
    return {
        "label_set_version": version,
        "model": model,
        "labels": scored.labels,
        "chosen": scored.chosen,
        "abstained": scored.abstained,
        "windows": scored.windows,
        "truncated": scored.truncated,
        "evidence": scored.evidence,
    }
