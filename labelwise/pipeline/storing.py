"""Storing a batch's results: jobs done, deliveries planned, vectors kept as traffic, in one transaction.

Only jobs still ``running`` are stored: a job another worker finished meanwhile (its message was
redelivered while this worker still held it) keeps that result, so no job is ever classified twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from labelwise.classify.classifier import Classifier
from labelwise.classify.scoring import Scored
from labelwise.models import jobs
from labelwise.models.tables import Integration, Job
from labelwise.pipeline.claiming import Claimed
from labelwise.pipeline.integrating import plan_deliveries
from labelwise.pipeline.traffic import Refiner, record
from labelwise.pipeline.views import job_view, to_result


@dataclass(frozen=True)
class Classified:
    """A message's outcome: the job's view, and the deliveries to publish once the batch is committed."""

    view: dict[str, Any]
    deliveries: list[str]


_DONE_COLUMNS = ("id", "status", "result", "error", "label_set_version_id", "finished_at", "classifications")


def store_batch(
    session: Session,
    classifier: Classifier,
    todo: dict[int, Claimed],
    scored: list[Scored],
    vectors: np.ndarray,
    *,
    refiner: Refiner | None,
) -> dict[int, Classified]:
    """Mark the batch's still-running jobs done (one executemany), plan their deliveries and keep their
    vectors as traffic; a job finished elsewhere meanwhile comes back as it is, without deliveries."""
    still_running = jobs.lock_running(session, [c.job.id for c in todo.values()])
    stored: dict[int, tuple[Claimed, int]] = {}
    out: dict[int, Classified] = {}
    for (i, claimed), outcome, row in zip(todo.items(), scored, range(len(scored)), strict=True):
        job = claimed.job  # detached: the claim's transaction is over; its fields are loaded
        if job.id not in still_running:
            out[i] = Classified(job_view(jobs.get_job(session, job.id)), [])
            continue
        result = to_result(outcome, version=claimed.version, model=classifier.model_id)
        jobs.mark_done(job, result=result, version_id=claimed.version_id)
        stored[i] = (claimed, row)
    subscribers: dict[tuple[int, str], list[Integration]] = {}
    # planned before the rows are written: a reply_to naming no integration adds a warning to the result
    planned = {i: plan_deliveries(session, c.job, subscribers=subscribers) for i, (c, _) in stored.items()}
    if stored:
        session.execute(update(Job), [{k: getattr(c.job, k) for k in _DONE_COLUMNS} for c, _ in stored.values()])
    for i, (claimed, _) in stored.items():
        out[i] = Classified(job_view(claimed.job), planned[i])
    if refiner is not None and stored:
        kept = list(stored.values())
        for label_set_id, picks in rows_by(kept, lambda pair: pair[0].label_set_id).items():
            record(
                session,
                refiner.policy,
                label_set_id=label_set_id,
                model_id=classifier.model_id,
                vectors=vectors[[kept[p][1] for p in picks]],
            )
    return out


def rows_by(items: list[Any], key: Callable[[Any], int]) -> dict[int, list[int]]:
    """Positions of ``items`` grouped by ``key``."""
    groups: dict[int, list[int]] = defaultdict(list)
    for position, item in enumerate(items):
        groups[key(item)].append(position)
    return groups
