"""Label vectors built outside the batch, so a tenant's huge label set never stalls anyone else's messages.

A label-set version's index is built the first time a message uses it: its label texts and examples are
embedded (those not stored yet; StoredEncoder keeps every text's vector in SQL), then the index is
assembled. For a few hundred new texts that costs less than a batch and happens inline, as before. A
version with more new texts than that (a document of tens of thousands of examples takes a minute of a
core) is built by a background thread instead, while:

- messages of that label set are classified with the set's previous version, the newest one whose
  vectors are at hand (their result says which version it was), until the new one is ready;
- a set with no earlier version at hand (its first version) has its messages wait, unacknowledged,
  and come back to the batcher every few seconds; every other message goes on at once.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import label_texts
from labelwise.classify.stored import StoredEncoder
from labelwise.labelset import LabelSetDocument
from labelwise.models import embeddings
from labelwise.pipeline.traffic import document_loader

log = logging.getLogger(__name__)
INLINE_TEXTS = 256  # a version needing at most this many new embeddings is built inside the batch
Ref = tuple[int, int, int, int]  # (version row id, version number, label set id, messages seen)


class LabelReadiness:
    """Which version a message of a label set is scored with now (``route``), and background builds."""

    def __init__(self, sessions: sessionmaker[Session], classifier: Classifier, *, inline_texts: int = INLINE_TEXTS):
        self.sessions, self.classifier, self.inline_texts = sessions, classifier, inline_texts
        self._cheap: dict[int, bool] = {}  # version id -> its index costs little to build
        self._latest: dict[int, Ref] = {}  # label set id -> its newest version that is ready
        self._building: set[int] = set()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def route(self, ref: Ref) -> Ref | None:
        """The version to score a message of ``ref``'s set with now: ``ref`` itself when its vectors
        are at hand or cheap to build, else the version this set's messages last used (a build of
        ``ref`` is started), else None: the message waits."""
        version_id, _, label_set_id, seen = ref
        if self._ready(version_id):
            with self._lock:
                self._latest[label_set_id] = ref  # the version this set's messages last used
            return ref
        self._schedule(version_id)
        with self._lock:
            previous = self._latest.get(label_set_id)
        return (previous[0], previous[1], label_set_id, seen) if previous is not None else None

    def _ready(self, version_id: int) -> bool:
        if self.classifier.cache.latest(version_id, self.classifier.model_id) is not None:
            return True
        with self._lock:
            cheap = self._cheap.get(version_id)
        if cheap is None:
            cheap = self._new_texts(version_id) <= self.inline_texts
            with self._lock:
                self._cheap[version_id] = cheap
        return cheap

    def _new_texts(self, version_id: int) -> int:
        """How many of the version's label texts and examples have no stored embedding yet."""
        doc = document_loader(self.sessions, version_id)()
        texts = {t for label in doc.labels for t in (*label_texts(label), *label.examples)}
        hashes = sorted(hashlib.sha256(t.encode()).hexdigest() for t in texts)
        with self.sessions() as session:
            stored = embeddings.get_many(session, model_id=self.classifier.model_id, hashes=hashes)
        return len(hashes) - len(stored)

    def _schedule(self, version_id: int) -> None:
        with self._lock:
            if version_id in self._building:
                return
            self._building.add(version_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="labelwise-label-builder", daemon=True)
                self._thread.start()
        log.info("label-set version %s: many new label texts; its vectors are built in the background", version_id)
        self._queue.put(version_id)

    def _run(self) -> None:
        while True:
            version_id = self._queue.get()
            try:
                self.build(version_id, document_loader(self.sessions, version_id))
            except Exception:  # the next message of that version schedules it again
                log.exception("building the label vectors of version %s failed", version_id)
            finally:
                with self._lock:
                    self._building.discard(version_id)

    def build(self, version_id: int, load_doc: Callable[[], LabelSetDocument]) -> None:
        """Embed the version's texts (stored in SQL as they go) and cache its index."""
        encoder = StoredEncoder(self.classifier.encoder, self.sessions)
        self.classifier.cache.get_or_build(version_id, load_doc(), encoder)
        with self._lock:
            self._cheap[version_id] = True
        log.info("label-set version %s: vectors ready (%d texts embedded)", version_id, encoder.encoded)
