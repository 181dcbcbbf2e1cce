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


def _decide(index: LabelIndex, sims: np.ndarray, top_k: int) -> Scored:
    """Array work only: its cost hardly grows with the number of labels (1,000 labels: see bench/)."""
    k = min(max(top_k, 2), len(sims))  # at least two: the runner-up decides the margin
    best = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
    best = best[np.argsort(-sims[best], kind="stable")]
    ranked = [{"name": index.names[i], "score": round(float(sims[i]), 4)} for i in best[:top_k]]
    if index.multi_label:
        passing = np.flatnonzero(sims >= index.thresholds)
        chosen = [index.names[i] for i in passing[np.argsort(-sims[passing], kind="stable")]]
    else:
        top = int(best[0])
        runner_up = float(sims[int(best[1])]) if len(best) > 1 else -np.inf
        close = index.margin > 0 and len(sims) > 1 and float(sims[top]) - runner_up < index.margin
        chosen = [index.names[top]] if sims[top] >= index.thresholds[top] and not close else []
    if chosen:
        return Scored(labels=ranked, chosen=chosen, abstained=False)
    return Scored(labels=ranked, chosen=[index.fallback] if index.fallback else [], abstained=True)
