"""Label vectors built outside the batch, so a tenant's edit of a huge label set never stalls anyone else's
messages.

A label-set version's index is built the first time a message uses it: its label texts and examples are
embedded (those not stored yet; StoredEncoder keeps every text's vector in SQL), then the index is
assembled (for a set with examples, a head fitted on all of them). A version of a few hundred texts at
most costs less than a batch and is built inline, as before. A bigger one (an import of thousands of
examples takes a minute of a core to embed, and a second to assemble even when every vector is stored
already, by another process) is built by a background thread, while its set's messages are classified
with the set's previous version that this process has at hand (their result says which version it was)
until the new one is ready.

A set's first version has no previous one: it is built inside the main lane's batch, as a small one is
(the caps on a document's texts, LABELWISE_MAX_LABEL_SET_TEXTS, bound that). Never inside the express
lane's: a light tenant that made a set of thousands of new texts held that lane for a minute of a core,
and every other light tenant's messages waited behind its one (bench/noisy_neighbour.py). There ``route``
raises Elsewhere: the message goes to the main lane (labelwise.worker.handling), which builds it; where
that lane runs in another process (LABELWISE_BULK_PROCESS), this process builds its own copy in the
background meanwhile, for the set's next messages. Messages are never held back waiting for a build:
held messages filled the consumer's prefetch, and every other tenant's messages waited behind them.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import label_texts
from labelwise.classify.stored import StoredEncoder
from labelwise.labelset import LabelSetDocument
from labelwise.models.tables import LabelSetVersion
from labelwise.pipeline.claiming import Elsewhere
from labelwise.pipeline.traffic import document_loader
from labelwise.priority import TURNS, background_thread

log = logging.getLogger(__name__)
INLINE_TEXTS = 256  # a version of at most this many texts (labels and examples) is built inside the batch
PREVIOUS_LOOKBACK = 3  # earlier versions looked at for one that is ready
Ref = tuple[int, int, int, int]  # (version row id, version number, label set id, messages seen)


class LabelReadiness:
    """Which version a message of a label set is scored with now (``route``), and background builds."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        classifier: Classifier,
        *,
        inline_texts: int = INLINE_TEXTS,
        main_lane_here: bool = True,
    ) -> None:
        """``main_lane_here``: the main lane's batches run in this process, on ``classifier`` (no bulk
        process), so a first version it builds serves the express lane too."""
        self.sessions, self.classifier, self.inline_texts = sessions, classifier, inline_texts
        self.main_lane_here = main_lane_here
        self._cheap: dict[int, bool] = {}  # version id -> its index costs little to build (few texts)
        self._latest: dict[int, Ref] = {}  # label set id -> its newest version that is ready
        self._building: set[int] = set()
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def route(self, ref: Ref) -> Ref:
        """The version to score a message of ``ref``'s set with now: ``ref`` itself when its index is at
        hand or cheap to build (or when the set has no earlier version ready: it is built inline), else the
        set's newest earlier version that is ready, while ``ref`` is built in the background. In the express
        lane a first version that is not cheap raises Elsewhere: the main lane builds it."""
        version_id, number, label_set_id, seen = ref
        if self._ready(version_id):
            with self._lock:
                if number >= self._latest.get(label_set_id, (0, 0))[1]:
                    self._latest[label_set_id] = ref  # the newest version of this set ready here
            return ref
        previous = self._previous(label_set_id, number)
        if previous is None:
            if TURNS.is_urgent():  # the express lane: no light tenant waits for another's build
                if not self.main_lane_here:
                    self._schedule(version_id)
                raise Elsewhere(f"label-set version {version_id}: a first version of many texts, for the main lane")
            return ref  # a first version: built inside the batch
        self._schedule(version_id)
        return (previous[0], previous[1], label_set_id, seen)

    def _previous(self, label_set_id: int, number: int) -> tuple[int, int] | None:
        """(version id, number) of the newest earlier version of the set whose vectors are at hand."""
        with self._lock:
            latest = self._latest.get(label_set_id)
        if latest is not None and latest[1] < number:
            return latest[0], latest[1]
        with self.sessions() as session:
            earlier = session.execute(
                select(LabelSetVersion.id, LabelSetVersion.version)
                .where(LabelSetVersion.label_set_id == label_set_id, LabelSetVersion.version < number)
                .order_by(LabelSetVersion.version.desc())
                .limit(PREVIOUS_LOOKBACK)
            ).all()
        return next(((row.id, row.version) for row in earlier if self._ready(row.id)), None)

    def _ready(self, version_id: int) -> bool:
        """Its index is in this process's cache, or it has few texts. A big version whose vectors another
        process stored is not ready here: assembling its index inline held the express lane for a second
        (bench/noisy_neighbour.py: a light tenant's message 1.2 s in its batch, after a flood's edit)."""
        if self.classifier.cache.latest(version_id, self.classifier.model_id) is not None:
            return True
        with self._lock:
            cheap = self._cheap.get(version_id)
        if cheap is None:
            cheap = self._texts(version_id) <= self.inline_texts
            with self._lock:
                self._cheap[version_id] = cheap
        return cheap

    def _texts(self, version_id: int) -> int:
        """How many distinct label texts and examples the version has."""
        doc = document_loader(self.sessions, version_id)()
        return len({t for label in doc.labels for t in (*label_texts(label), *label.examples)})

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
        background_thread()  # one tenant's big label set never takes the cores from others' messages
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
        log.info("label-set version %s: vectors ready (%d texts embedded)", version_id, encoder.encoded)
