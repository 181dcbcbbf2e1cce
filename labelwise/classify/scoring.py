"""Scores against a LabelIndex, ranking, thresholds, abstention (threshold and margin) and multi-label choice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelwise.classify.labels import LabelIndex


@dataclass(frozen=True)
class Scored:
    labels: list[dict[str, float | str]]  # top-k, best first: {"name", "score"}
    chosen: list[str]
    abstained: bool


def score(index: LabelIndex, text_vectors: np.ndarray, *, top_k: int = 5) -> list[Scored]:
    """One Scored per row of ``text_vectors`` (unit rows, as the encoder returns them)."""
    return [_decide(index, row, top_k) for row in index.label_scores(text_vectors)]


def decide(index: LabelIndex, sims: np.ndarray, *, top_k: int = 5) -> Scored:
    """The choice for one message from its ``(n_labels,)`` scores (what :func:`score` does per row)."""
    return _decide(index, sims, top_k)


def _decide(index: LabelIndex, sims: np.ndarray, top_k: int) -> Scored:
    order = np.argsort(-sims, kind="stable")
    ranked = [{"name": index.names[i], "score": round(float(sims[i]), 4)} for i in order[:top_k]]
    passing = [int(i) for i in order if sims[i] >= index.thresholds[i]]
    if index.multi_label:
        chosen = [index.names[i] for i in passing]
    else:
        top = int(order[0])
        close = index.margin > 0 and len(order) > 1 and sims[top] - sims[int(order[1])] < index.margin
        chosen = [index.names[top]] if passing and passing[0] == top and not close else []
    if chosen:
        return Scored(labels=ranked, chosen=chosen, abstained=False)
    return Scored(labels=ranked, chosen=[index.fallback] if index.fallback else [], abstained=True)
