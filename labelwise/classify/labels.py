"""Label vectors built from a label set's document, cached per (label-set version, model)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from labelwise.classify.base import Encoder
from labelwise.labelset import Label, LabelSetDocument

DESCRIPTION_WEIGHT = 0.5


def readable(name: str) -> str:
    """``card_arrival`` / ``card-arrival`` -> ``card arrival``."""
    return " ".join(name.replace("_", " ").replace("-", " ").split())


def label_text(label: Label) -> str:
    name = readable(label.name)
    return f"{name}: {label.description}" if label.description else name


@dataclass(frozen=True)
class LabelIndex:
    """Everything scoring needs about one label-set version, as arrays."""

    names: tuple[str, ...]
    vectors: np.ndarray  # (n_labels, dim), unit rows
    thresholds: np.ndarray  # (n_labels,)
    multi_label: bool
    fallback: str | None


def build_index(doc: LabelSetDocument, encoder: Encoder) -> LabelIndex:
    """Embed every label's text and examples in one encoder call and combine them per label."""
    texts: list[str] = []
    spans: list[tuple[int, int]] = []
    for label in doc.labels:
        start = len(texts)
        texts.append(label_text(label))
        texts.extend(label.examples)
        spans.append((start, len(texts)))
    embedded = encoder.encode(texts)
    vectors = np.stack([_combine(embedded[a], embedded[a + 1 : b]) for a, b in spans])
    thresholds = np.array(
        [doc.threshold if label.threshold is None else label.threshold for label in doc.labels], dtype=np.float32
    )
    return LabelIndex(
        names=tuple(label.name for label in doc.labels),
        vectors=vectors.astype(np.float32),
        thresholds=thresholds,
        multi_label=doc.multi_label,
        fallback=doc.fallback,
    )


def _combine(text_vec: np.ndarray, example_vecs: np.ndarray) -> np.ndarray:
    """Weighted mean of the description vector and the examples' mean direction, renormalised."""
    if len(example_vecs) == 0:
        return text_vec
    vec = DESCRIPTION_WEIGHT * text_vec + (1 - DESCRIPTION_WEIGHT) * _unit(example_vecs.mean(axis=0))
    return _unit(vec)


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec


class LabelCache:
    """A thread-safe LRU of LabelIndex by (version id, model id)."""

    def __init__(self, max_entries: int = 64) -> None:
        self._max = max_entries
        self._items: OrderedDict[tuple[int, str], LabelIndex] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, version_id: int, doc: LabelSetDocument, encoder: Encoder) -> LabelIndex:
        key = (version_id, encoder.model_id)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        index = build_index(doc, encoder)
        with self._lock:
            self._items[key] = index
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        return index

    def __len__(self) -> int:
        return len(self._items)
