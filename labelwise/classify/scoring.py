"""Cosine scores against a LabelIndex, ranking, thresholds, abstention and multi-label choice."""

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
    sims = text_vectors @ index.vectors.T
    return [_decide(index, row, top_k) for row in sims]


def _decide(index: LabelIndex, sims: np.ndarray, top_k: int) -> Scored:
    order = np.argsort(-sims, kind="stable")
    ranked = [{"name": index.names[i], "score": round(float(sims[i]), 4)} for i in order[:top_k]]
    passing = [int(i) for i in order if sims[i] >= index.thresholds[i]]
    if index.multi_label:
        chosen = [index.names[i] for i in passing]
    else:
        chosen = [index.names[int(order[0])]] if passing and passing[0] == int(order[0]) else []
    if chosen:
        return Scored(labels=ranked, chosen=chosen, abstained=False)
    return Scored(labels=ranked, chosen=[index.fallback] if index.fallback else [], abstained=True)
