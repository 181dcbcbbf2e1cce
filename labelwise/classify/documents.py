"""Texts as documents: every window of every text encoded in one model call, and a text's scores pooled
from its windows.

Pooling (chosen on bench/long_documents.py; see the README): a label's document score is
``POOL_MAX_WEIGHT * its best window's score + (1 - POOL_MAX_WEIGHT) * its mean score over the windows``,
with ``POOL_MAX_WEIGHT = 0.5``. The best window finds one relevant sentence anywhere in a long text (a
needle); the mean keeps long unrelated text from being labelled by whichever of its many windows
happens to clear a threshold (pure max labelled every 4k-16k news document in the benchmark with some
Banking77 intent; this mix none). The mean is over scores, not the score of the mean vector: the mean
of many unrelated windows' vectors leans towards every label at once. A one-window text scores exactly
as the plain encoder did, since both terms are then the same. The evidence for a label is the window
with the highest score for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labelwise.classify.base import Encoder
from labelwise.classify.labels import LabelIndex, to_unit
from labelwise.classify.windows import Reading, Windower

POOL_MAX_WEIGHT = 0.5


@dataclass(frozen=True)
class Encoded:
    """The windows of a batch of texts and their vectors.

    ``vectors`` has one unit row per window; ``owner[w]`` is the text window ``w`` belongs to (texts in
    order, their windows consecutive); ``readings[t]`` says how text ``t`` was cut.
    """

    vectors: np.ndarray
    owner: np.ndarray
    readings: list[Reading]

    def text_vectors(self) -> np.ndarray:
        """One unit vector per text: the normalised mean of its windows (a one-window text's own vector)."""
        n = len(self.readings)
        sums = np.zeros((n, self.vectors.shape[1]), dtype=np.float32)
        np.add.at(sums, self.owner, self.vectors)
        out = to_unit(sums).astype(np.float32)
        counts = np.bincount(self.owner, minlength=n)
        single = np.flatnonzero(counts == 1)
        out[single] = self.vectors[np.searchsorted(self.owner, single)]  # bit-for-bit the encoder's vector
        return out

    def rows(self, texts: Sequence[int]) -> Encoded:
        """The windows of the texts at positions ``texts``, renumbered 0..len(texts)-1."""
        picks = [np.flatnonzero(self.owner == t) for t in texts]
        owner = np.concatenate([np.full(len(p), i) for i, p in enumerate(picks)]) if picks else np.zeros(0, int)
        index = np.concatenate(picks) if picks else np.zeros(0, int)
        return Encoded(self.vectors[index], owner.astype(np.int64), [self.readings[t] for t in texts])


def encode_texts(encoder: Encoder, windower: Windower | None, texts: Sequence[str]) -> Encoded:
    """Cut ``texts`` into windows (none when ``windower`` is None) and encode all of them in one call."""
    texts = list(texts)
    readings = windower.read(texts) if windower else [Reading(((0, len(t)),), False) for t in texts]
    pieces = [texts[t][s:e] for t, r in enumerate(readings) for s, e in r.spans]
    owner = np.repeat(np.arange(len(texts)), [len(r.spans) for r in readings]).astype(np.int64)
    vectors = encoder.encode(pieces) if pieces else np.zeros((0, 1), dtype=np.float32)
    return Encoded(np.asarray(vectors, dtype=np.float32), owner, readings)


@dataclass(frozen=True)
class Pooled:
    """Document scores ``(n_texts, n_labels)`` and, per text and label, the window that scored highest."""

    scores: np.ndarray
    best_window: np.ndarray  # (n_texts, n_labels) index into that text's spans
    best_score: np.ndarray  # (n_texts, n_labels) that window's score


def pool(index: LabelIndex, encoded: Encoded, *, max_weight: float = POOL_MAX_WEIGHT) -> Pooled:
    """Pool window scores into document scores (see the module docstring)."""
    n = len(encoded.readings)
    window_scores = index.label_scores(encoded.vectors) if len(encoded.owner) else np.zeros((0, len(index.names)))
    mean_scores = np.zeros((n, len(index.names)), dtype=np.float64)
    np.add.at(mean_scores, encoded.owner, window_scores)
    mean_scores /= np.maximum(np.bincount(encoded.owner, minlength=n), 1)[:, None]
    best_score = np.full((n, len(index.names)), -np.inf, dtype=np.float32)
    best_window = np.zeros((n, len(index.names)), dtype=np.int64)
    first = np.searchsorted(encoded.owner, np.arange(n))
    for t in range(n):
        rows = window_scores[first[t] : first[t] + len(encoded.readings[t].spans)]
        best_window[t] = rows.argmax(axis=0)
        best_score[t] = rows.max(axis=0)
    scores = max_weight * best_score + (1 - max_weight) * mean_scores
    single = np.array([len(r.spans) == 1 for r in encoded.readings], dtype=bool)
    scores[single] = best_score[single]  # its one window's scores: bit-for-bit what a plain encoder call gives
    return Pooled(scores.astype(np.float32), best_window, best_score)
