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
from sqlalchemy.orm import Session

from labelwise.classify.classifier import Classifier
from labelwise.classify.scoring import Scored
from labelwise.models import jobs
from labelwise.models.tables import Integration, utcnow
from labelwise.pipeline.claiming import Claimed
from labelwise.pipeline.integrating import add_deliveries, delivery_targets
from labelwise.pipeline.traffic import Refiner, record
from labelwise.pipeline.views import job_view, to_result


@dataclass(frozen=True)
class Classified:
    """A message's outcome: the job's view, and the deliveries to publish once the batch is committed."""

    view: dict[str, Any]
    deliveries: list[str]


def store_batch(
    session: Session,
    classifier: Classifier,
    todo: dict[int, Claimed],
    scored: list[Scored],
    vectors: np.ndarray,
    *,
    refiner: Refiner | None,
) -> dict[int, Classified]:
    """Store the results of the batch's still-running jobs (one statement), plan their deliveries and
    keep their vectors as traffic; a job finished elsewhere meanwhile comes back as it is, without
    deliveries."""
    finished_at = utcnow()
    subscribers: dict[tuple[int, str], list[Integration]] = {}
    targets = {}
    for (i, claimed), outcome in zip(todo.items(), scored, strict=True):
        job = claimed.job  # detached: the claim's transaction is over; its fields are loaded
        jobs.mark_done(
            job,
            result=to_result(outcome, version=claimed.version, model=classifier.model_id),
            version_id=claimed.version_id,
        )
        job.finished_at = finished_at
        # before the rows are written: a reply_to naming no integration adds a warning to the result
        targets[i] = delivery_targets(session, job, subscribers=subscribers)
    stored = jobs.store_done(session, [c.job for c in todo.values()])
    out: dict[int, Classified] = {}
    kept: list[int] = []  # rows of ``vectors`` whose job was stored
    for row, (i, claimed) in enumerate(todo.items()):
        if claimed.job.id in stored:
            out[i] = Classified(job_view(claimed.job), add_deliveries(session, claimed.job, targets[i]))
            kept.append(row)
        else:
            out[i] = Classified(job_view(jobs.get_job(session, claimed.job.id)), [])
    if refiner is not None and kept:
        claimed_all = list(todo.values())
        for label_set_id, picks in rows_by([claimed_all[r] for r in kept], lambda c: c.label_set_id).items():
            record(
                session,
                refiner.policy,
                label_set_id=label_set_id,
                model_id=classifier.model_id,
                vectors=vectors[[kept[p] for p in picks]],
            )
    return out


def rows_by(items: list[Any], key: Callable[[Any], int]) -> dict[int, list[int]]:
    """Positions of ``items`` grouped by ``key``."""
    groups: dict[int, list[int]] = defaultdict(list)
    for position, item in enumerate(items):
        groups[key(item)].append(position)
    return groups
