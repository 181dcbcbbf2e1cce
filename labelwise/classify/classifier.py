"""The per-process classifier: an encoder, how long texts are cut into windows, a label cache and the
scoring rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from labelwise.classify.base import Encoder
from labelwise.classify.documents import Encoded, encode_texts
from labelwise.classify.labels import LabelCache, Traffic
from labelwise.classify.scoring import Scored, score_documents
from labelwise.classify.windows import Windower
from labelwise.labelset import LabelSetDocument


@dataclass
class Classifier:
    encoder: Encoder
    top_k: int = 5
    cache: LabelCache = field(default_factory=LabelCache)
    windower: Windower | None = None  # None: a text is read as the encoder truncates it

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def encode(self, texts: Sequence[str]) -> Encoded:
        """Every window of every text, encoded in one model call."""
        return encode_texts(self.encoder, self.windower, texts)

    def classify(
        self, version_id: int, doc: LabelSetDocument, texts: Sequence[str], *, traffic: Traffic | None = None
    ) -> list[Scored]:
        """Score ``texts`` against the label set version.

        Label vectors are cached by version, model and ``traffic.key``: pass the label set's recent
        unlabeled messages (:class:`Traffic`) to refine them; a new key rebuilds them (seconds).
        """
        index = self.cache.get_or_build(version_id, doc, self.encoder, traffic=traffic)
        return score_documents(index, self.encode(texts), top_k=self.top_k)
