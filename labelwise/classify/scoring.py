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
    """One Scored per row of ``text_vectors`` (unit rows, as the encoder returns them).

    Array work for the whole batch at once: its cost hardly grows with the number of labels (1,000
    labels: see bench/labels_scale.py) and little with the number of messages."""
    sims = index.label_scores(text_vectors)
    n, n_labels = sims.shape
    if n == 0:
        return []
    k = min(max(top_k, 2), n_labels)  # at least two: the runner-up decides the margin
    best = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n_labels else np.tile(np.arange(n_labels), (n, 1))
    best = np.take_along_axis(best, np.argsort(-np.take_along_axis(sims, best, axis=1), axis=1, kind="stable"), axis=1)
    top_scores = np.take_along_axis(sims, best, axis=1)
    names, ranked_scores = index.names, top_scores[:, :top_k].tolist()
    ranked_labels = best[:, :top_k].tolist()
    chosen_rows = _choose_multi(index, sims) if index.multi_label else _choose_single(index, best, top_scores)
    out = []
    for labels_row, scores_row, chosen in zip(ranked_labels, ranked_scores, chosen_rows, strict=True):
        ranked = [{"name": names[i], "score": round(s, 4)} for i, s in zip(labels_row, scores_row, strict=True)]
        if chosen:
            out.append(Scored(labels=ranked, chosen=chosen, abstained=False))
        else:
            out.append(Scored(labels=ranked, chosen=[index.fallback] if index.fallback else [], abstained=True))
    return out


def _choose_single(index: LabelIndex, best: np.ndarray, top_scores: np.ndarray) -> list[list[str]]:
    """The top label where it clears its threshold and (with a margin) leads the runner-up enough."""
    top = best[:, 0]
    clears = top_scores[:, 0] >= index.thresholds[top]
    if index.margin > 0 and best.shape[1] > 1:
        clears &= ~(top_scores[:, 0] - top_scores[:, 1] < index.margin)
    return [[index.names[t]] if ok else [] for t, ok in zip(top.tolist(), clears.tolist(), strict=True)]


def _choose_multi(index: LabelIndex, sims: np.ndarray) -> list[list[str]]:
    """Every label that clears its threshold, best first."""
    chosen = []
    for row in sims:
        passing = np.flatnonzero(row >= index.thresholds)
        chosen.append([index.names[i] for i in passing[np.argsort(-row[passing], kind="stable")]])
    return chosen
