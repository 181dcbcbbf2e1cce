"""The arrays a label set is scored with (:class:`LabelIndex`), the traffic it may be refined from
(:class:`Traffic`), and the calibration of raw scores to probabilities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Traffic:
    """Recent unlabeled messages of one label set, as vectors; the worker keeps and refreshes them.

    ``key`` must change whenever ``vectors`` change: it is part of the cache key of the refined index.
    ``center``: also subtract the traffic's mean vector from messages and labels before scoring
    (measured: +0.3 points on Banking77 names only, so off by default).
    """

    key: str
    vectors: np.ndarray  # (n, dim), unit rows
    center: bool = False


@dataclass(frozen=True)
class Gate:
    """Where a head refined from traffic may score: near the traffic that moved each label.

    Label ``i``'s refined score counts in full for a message whose cosine with ``centers[i]`` (the mean
    direction of the messages that moved it) is at least ``radius[i] + softness``, not at all below
    ``radius[i]`` (the unrefined head's score ``x @ base[i]`` then stands), linearly between. A label
    with no evidence has an infinite radius: its unrefined score everywhere. With ``evidence``, a
    message keeps all its unrefined scores when its unrefined top label did not move (no moved label
    takes it), or when that label is ``dominant`` and moved on more than ``evidence_ratio`` times the
    evidence of the refined top label (in traffic dominated by a few labels, a rare label's direction
    is mostly its big neighbours' messages and would take theirs).

    The scores are then shifted per message so that the top one is the unrefined head's top score:
    refinement decides the order of the labels, never how sure the set is that a message belongs to
    one (abstention and thresholds keep their unrefined meaning; off-topic traffic that one label
    absorbed would otherwise score high: AG News with 30% off-topic, abstention AUROC 0.73 -> 0.36).
    """

    base: np.ndarray  # (n_labels, dim) the unrefined head (unit rows)
    centers: np.ndarray  # (n_labels, dim) unit rows
    radius: np.ndarray  # (n_labels,)
    softness: float = 0.05
    evidence: np.ndarray | None = None  # (n_labels,) messages that moved each label (0: not moved)
    dominant: np.ndarray | None = None  # (n_labels,) bool: labels with far more evidence than most
    evidence_ratio: float = 4.0

    def apply(self, x: np.ndarray, refined: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_labels)`` of unit rows ``x`` given their refined head scores."""
        base = x @ self.base.T
        inside = np.clip((x @ self.centers.T - self.radius) / self.softness, 0.0, 1.0)
        gated = base + inside * (refined - base)
        if self.evidence is not None and self.dominant is not None:  # see the class docstring
            top = base.argmax(axis=1)
            outweighed = self.evidence[top] > self.evidence_ratio * self.evidence[gated.argmax(axis=1)]
            stand = (self.evidence[top] == 0) | (outweighed & self.dominant[top])
            gated[stand] = base[stand]
        return gated + (base.max(axis=1) - gated.max(axis=1))[:, None]


@dataclass(frozen=True)
class LabelIndex:
    """Everything scoring needs about one label-set version, as arrays.

    A message's score for label ``i`` is ``(1 - seed_weight) * (x @ vectors[i] + bias[i])
    + seed_weight * max(x @ seeds[seed_owner == i])`` where ``x`` is the message vector, first
    centred on ``center`` and renormalised when a center is set; with ``calibration`` the scores
    are then mapped to probabilities by :func:`calibrate`.
    """

    names: tuple[str, ...]
    vectors: np.ndarray  # (n_labels, dim) head weights; unit rows for a cosine head
    thresholds: np.ndarray  # (n_labels,)
    multi_label: bool
    fallback: str | None
    bias: np.ndarray | None = None  # (n_labels,) added to the head score
    seeds: np.ndarray | None = None  # (n_seeds, dim) unit rows, grouped by label in label order
    seed_owner: np.ndarray | None = None  # (n_seeds,) label of each seed, non-decreasing, every label present
    seed_weight: float = 0.0
    center: np.ndarray | None = None  # (dim,)
    margin: float = 0.0  # single-label: abstain when the top two scores are closer than this
    calibration: tuple[float, float, float] | None = None  # (score, margin, bias): see calibrate()
    gate: Gate | None = None  # refined head scores apply only near each label's traffic evidence
    # A fitted head refitted from traffic: the index it was refitted from. Each message's scores are
    # shifted so that its top score is the one ``unrefined`` gives it, as the Gate does for a cosine
    # head: refinement decides the order of the labels, never how sure the set is that a message
    # belongs to one (AG News with examples and 30% off-topic traffic: abstention AUROC 0.459 -> 0.716,
    # refinement off's; the refitted head scores alone on dense traffic, without the nearest-seed term).
    unrefined: LabelIndex | None = None

    def label_scores(self, text_vectors: np.ndarray) -> np.ndarray:
        """``(n_texts, n_labels)`` scores of unit text vectors (see the class docstring), calibrated
        to probabilities when the set has a calibration."""
        sims = self.raw_scores(text_vectors)
        return sims if self.calibration is None else calibrate(sims, self.calibration)

    def raw_scores(self, text_vectors: np.ndarray) -> np.ndarray:
        """The scores before calibration."""
        x = text_vectors if self.center is None else to_unit(text_vectors - self.center)
        sims = x @ self.vectors.T
        if self.bias is not None:
            sims = sims + self.bias
        if self.gate is not None:
            sims = self.gate.apply(x, sims)
        if self.seeds is not None and self.seed_owner is not None and self.seed_weight > 0:
            starts = np.flatnonzero(np.r_[True, np.diff(self.seed_owner) != 0])
            nearest = np.maximum.reduceat(x @ self.seeds.T, starts, axis=1)
            sims = (1 - self.seed_weight) * sims + self.seed_weight * nearest
        if self.unrefined is not None:
            sims = sims + (self.unrefined.raw_scores(text_vectors).max(axis=1) - sims.max(axis=1))[:, None]
        return sims.astype(np.float32)


def calibrate(sims: np.ndarray, calibration: tuple[float, float, float]) -> np.ndarray:
    """Probabilities from raw scores ``(n, n_labels)``: ``sigmoid(a * s + c * (s - best other) + b)``.

    ``best other`` is the best score of the other labels (the runner-up's for the top label). With
    ``a, c >= 0`` the order of the labels is kept: the top label's lead ``s1 - s2`` becomes
    ``(a + 2c)(s1 - s2)`` before the sigmoid, every other label's ``(a + c)`` times its gap.
    """
    a, c, b = calibration
    sims = np.asarray(sims, dtype=np.float32)
    if sims.shape[1] > 1:
        top2 = -np.partition(-sims, 1, axis=1)[:, :2]
        other = np.where(sims >= top2[:, :1], top2[:, 1:2], top2[:, :1])
    else:
        other = sims
    z = a * sims + c * (sims - other) + b
    return (1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))).astype(np.float32)


def to_unit(vecs: np.ndarray) -> np.ndarray:
    """Rows (or one vector) scaled to unit length; zero rows stay zero."""
    norms = np.linalg.norm(vecs, axis=-1, keepdims=True)
    return vecs / np.where(norms > 0, norms, 1.0)
