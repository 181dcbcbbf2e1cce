"""Scores against a LabelIndex, ranking, thresholds, abstention (threshold and margin) and multi-label choice;
for documents read in windows, also how the text was read and the evidence for each chosen label."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from labelwise.classify.documents import POOL_MAX_WEIGHT, Encoded, pool
from labelwise.classify.labels import LabelIndex


@dataclass(frozen=True)
class Scored:
    labels: list[dict[str, float | str]]  # top-k, best first: {"name", "score"}
    chosen: list[str]
    abstained: bool
    windows: int = 1  # model windows that read the text
    truncated: bool = False  # the token budget cut the text
    evidence: list[dict[str, Any]] = field(default_factory=list)  # per chosen label: {"label", "start", "end", "score"}


def score(index: LabelIndex, text_vectors: np.ndarray, *, top_k: int = 5) -> list[Scored]:
    """One Scored per row of ``text_vectors`` (unit rows, as the encoder returns them).

    Array work for the whole batch at once: its cost hardly grows with the number of labels (1,000
    labels: see bench/labels_scale.py) and little with the number of messages."""
    return rank(index, index.label_scores(text_vectors), top_k=top_k)


def score_documents(
    index: LabelIndex, encoded: Encoded, *, top_k: int = 5, max_weight: float = POOL_MAX_WEIGHT
) -> list[Scored]:
    """One Scored per text of ``encoded``: scores pooled from its windows (classify.documents), with
    ``windows``, ``truncated`` and, for each chosen label, the span of the window that scored highest."""
    pooled = pool(index, encoded, max_weight=max_weight)
    position = {name: i for i, name in enumerate(index.names)}
    out = []
    for t, scored in enumerate(rank(index, pooled.scores, top_k=top_k)):
        reading = encoded.readings[t]
        evidence = []
        for name in scored.chosen if not scored.abstained else []:
            i = position[name]
            start, end = reading.spans[int(pooled.best_window[t, i])]
            evidence.append(
                {"label": name, "start": start, "end": end, "score": round(float(pooled.best_score[t, i]), 4)}
            )
        out.append(replace(scored, windows=len(reading.spans), truncated=reading.truncated, evidence=evidence))
    return out


def rank(index: LabelIndex, sims: np.ndarray, *, top_k: int = 5) -> list[Scored]:
    """One Scored per row of ``sims`` ``(n_texts, n_labels)``: top-k, thresholds, abstention."""
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
