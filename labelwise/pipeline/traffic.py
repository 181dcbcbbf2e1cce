"""A label set's recent traffic: kept in SQL by the worker, and used to refine its label vectors.

Every classified message's vector is stored (float16) under its label set; the newest
``keep`` stay. Each time another ``refresh_every`` messages have been seen, the label vectors are
rebuilt from the newest traffic in a background thread, while messages go on being scored with the
index in hand (stale-while-revalidate): no message waits for a rebuild.

A rebuild costs seconds of CPU (label spreading over 10,000 messages: about 4 s for 10 or for
1,000 labels on one core; a set without examples spreads twice, once more for the acceptance test
of :mod:`labelwise.classify.refining`: Banking77 names only 3.5 -> 5.8 s), so a refresh that is
due waits until the last rebuild's time is at most ``max_share`` of the time from its start to the
next one: a busy worker spends at most that share of its time refining, a quiet one still
refreshes every ``refresh_every`` messages.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.base import Encoder
from labelwise.classify.labels import LabelCache, LabelIndex, Traffic, to_unit
from labelwise.classify.stored import StoredEncoder
from labelwise.labelset import LabelSetDocument
from labelwise.models import labelsets, traffic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrafficPolicy:
    keep: int = 10_000
    refresh_every: int = 1_000

    def key(self, label_set_id: int, seen: int) -> str | None:
        """The traffic key an index of this set should have now; None before the first refresh."""
        epoch = seen // self.refresh_every
        return f"{label_set_id}:{epoch}" if epoch > 0 else None


def to_rows(vectors: np.ndarray) -> list[bytes]:
    return [row.astype("<f2").tobytes() for row in vectors]


def from_rows(rows: list[bytes]) -> np.ndarray:
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([np.frombuffer(r, dtype="<f2") for r in rows]).astype(np.float32)


def record(session: Session, policy: TrafficPolicy, *, label_set_id: int, model_id: str, vectors: np.ndarray) -> None:
    """Keep the vectors of messages just classified with a set; prune when a refresh is due."""
    seen = traffic.append(session, label_set_id=label_set_id, model_id=model_id, vectors=to_rows(vectors))
    if (seen - len(vectors)) // policy.refresh_every != seen // policy.refresh_every:
        traffic.prune(session, label_set_id=label_set_id, model_id=model_id, keep=policy.keep)


def refine(
    cache: LabelCache,
    version_id: int,
    doc: LabelSetDocument,
    encoder: Encoder,
    vectors: np.ndarray,
    *,
    key: str,
) -> LabelIndex:
    """The index a refresh swaps in, from the set's recent traffic ``vectors`` (oldest first), cached
    under ``key``. Refinement is guarded so that it never scores worse than the unrefined index where
    the traffic says nothing (see :mod:`labelwise.classify.refining`)."""
    return cache.get_or_build(version_id, doc, encoder, traffic=Traffic(key, vectors))


class Refiner:
    """One background thread per worker process that rebuilds label indexes from traffic."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        cache: LabelCache,
        policy: TrafficPolicy,
        *,
        max_share: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions, self.cache, self.policy = sessions, cache, policy
        self.max_share, self._clock = max_share, clock
        self._not_before = float("-inf")  # no rebuild starts before this time (the CPU budget)
        self._queue: queue.SimpleQueue[tuple[tuple[int, str, str], Callable[[], None]]] = queue.SimpleQueue()
        self._pending: set[tuple[int, str, str]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.rebuilt = 0

    def index_for(
        self,
        *,
        version_id: int,
        label_set_id: int,
        seen: int,
        load_doc: Callable[[], LabelSetDocument],
        encoder: Encoder,
    ) -> LabelIndex:
        """The freshest index at hand; schedules a rebuild when the traffic has moved on."""
        key = self.policy.key(label_set_id, seen)
        index = self.cache.peek(version_id, encoder.model_id, key)
        if index is not None:
            return index
        index = self.cache.latest(version_id, encoder.model_id)
        if index is None:
            index = self.cache.get_or_build(version_id, load_doc(), encoder)  # no traffic: fast
        if key is not None and self._clock() >= self._not_before:
            self._schedule(
                (version_id, encoder.model_id, key),
                lambda: self._rebuild(
                    version_id=version_id, label_set_id=label_set_id, key=key, load_doc=load_doc, encoder=encoder
                ),
            )
        return index

    def _rebuild(
        self,
        *,
        version_id: int,
        label_set_id: int,
        key: str,
        load_doc: Callable[[], LabelSetDocument],
        encoder: Encoder,
    ) -> None:
        with self.sessions() as session:
            rows = traffic.latest(session, label_set_id=label_set_id, model_id=encoder.model_id, limit=self.policy.keep)
        refine(self.cache, version_id, load_doc(), encoder, from_rows(rows), key=key)
        self.rebuilt += 1
        log.info(
            "label set %s version %s: label vectors refined from %d recent messages",
            label_set_id,
            version_id,
            len(rows),
        )

    def _schedule(self, job_key: tuple[int, str, str], work: Callable[[], None]) -> None:
        with self._lock:
            if job_key in self._pending:
                return
            self._pending.add(job_key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="labelwise-refiner", daemon=True)
                self._thread.start()
        self._queue.put((job_key, work))

    def _run(self) -> None:
        while True:
            job_key, work = self._queue.get()
            started = self._clock()
            try:
                work()
            except Exception:  # a failed rebuild leaves the previous index in use; the next epoch retries
                log.exception("refining label vectors failed")
            finally:
                spent = self._clock() - started
                with self._lock:
                    self._pending.discard(job_key)
                    # spent / (spent + wait) <= max_share: the next rebuild waits its share of idle time
                    self._not_before = max(self._not_before, self._clock() + spent * (1 / self.max_share - 1))


def label_stats(
    sessions: sessionmaker[Session], encoder: Encoder, *, tenant_id: int, name: str, policy: TrafficPolicy
) -> dict[str, Any]:
    """Per label of a set's current version: how many of the kept recent messages it draws (their top
    label once refined from them) and how far refining moved its vector (``1 - cosine``, 0 = not at all).

    The index is rebuilt here from the traffic the worker keeps, by the worker's refinement step: what a
    worker holds after its next refresh. ``refined`` is false when that step left the vectors as they
    were (no traffic, or a refined head that failed the acceptance test on bursty traffic). Raises
    NotFoundError for an unknown set.
    """
    with sessions() as session:
        version = labelsets.current_version(session, tenant_id=tenant_id, name=name)
        doc = LabelSetDocument.model_validate(labelsets.version_document(session, version.id))
        seen = labelsets.get_label_set(session, tenant_id=tenant_id, name=name).traffic_seen
        rows = traffic.latest(session, label_set_id=version.label_set_id, model_id=encoder.model_id, limit=policy.keep)
    label_encoder = StoredEncoder(encoder, sessions)
    cache = LabelCache(2)
    base = cache.get_or_build(version.id, doc, label_encoder)
    vectors = from_rows(rows)
    refined = base
    if len(rows) and doc.refine_from_traffic is not False:
        refined = refine(cache, version.id, doc, label_encoder, vectors, key="stats")
    drawn = np.zeros(len(base.names), dtype=np.int64)
    if len(rows):
        drawn = np.bincount(refined.label_scores(vectors).argmax(axis=1), minlength=len(base.names))
    moved = 1.0 - np.sum(to_unit(base.vectors) * to_unit(refined.vectors), axis=1)
    return {
        "label_set": name,
        "version": version.version,
        "model": encoder.model_id,
        "messages_seen": seen,
        "messages_kept": len(rows),
        "refined": not np.array_equal(refined.vectors, base.vectors),  # False too when refused
        "labels": [
            {"name": label, "drawn": int(n), "moved": round(float(max(m, 0.0)), 4)}
            for label, n, m in zip(base.names, drawn, moved, strict=True)
        ],
    }


def document_loader(sessions: sessionmaker[Session], version_id: int) -> Callable[[], LabelSetDocument]:
    def load() -> LabelSetDocument:
        with sessions() as session:
            return LabelSetDocument.model_validate(labelsets.version_document(session, version_id))

    return load
