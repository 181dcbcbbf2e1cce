"""The per-process classifier: an encoder, a label cache and the scoring rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from labelwise.classify.base import Encoder
from labelwise.classify.labels import LabelCache
from labelwise.classify.scoring import Scored, score
from labelwise.labelset import LabelSetDocument


@dataclass
class Classifier:
    encoder: Encoder
    top_k: int = 5
    cache: LabelCache = field(default_factory=LabelCache)

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def classify(self, version_id: int, doc: LabelSetDocument, texts: Sequence[str]) -> list[Scored]:
        """Score ``texts`` against the label set version (label vectors cached by version and model)."""
        index = self.cache.get_or_build(version_id, doc, self.encoder)
        return score(index, self.encoder.encode(texts), top_k=self.top_k)
