"""Scoring rules on hand-made unit vectors: ranking, thresholds, abstain, fallback, multi-label."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from labelwise.classify.labels import LabelIndex, calibrate, readable
from labelwise.classify.scoring import score

EYE = np.eye(3, dtype=np.float32)


def index(
    *, thresholds: tuple[float, ...] = (0.5, 0.5, 0.5), multi: bool = False, fallback: str | None = None
) -> LabelIndex:
    return LabelIndex(("a", "b", "c"), EYE, np.array(thresholds, dtype=np.float32), multi, fallback)


def unit(*xs: float) -> np.ndarray:
    v = np.array([xs], dtype=np.float32)
    return v / np.linalg.norm(v)


def test_ranks_best_first_and_chooses_the_top_label() -> None:
    [s] = score(index(), unit(0.2, 0.9, 0.1), top_k=2)
    assert [x["name"] for x in s.labels] == ["b", "a"]
    assert s.chosen == ["b"] and not s.abstained


def test_abstains_below_threshold_and_reports_the_fallback() -> None:
    [s] = score(index(thresholds=(0.9, 0.9, 0.9), fallback="needs-triage"), unit(0.6, 0.5, 0.6))
    assert s.abstained and s.chosen == ["needs-triage"]
    [s] = score(index(thresholds=(0.9, 0.9, 0.9)), unit(0.6, 0.5, 0.6))
    assert s.abstained and s.chosen == []


def test_per_label_threshold_overrides_the_set() -> None:
    [s] = score(index(thresholds=(0.5, 0.95, 0.5)), unit(0.1, 0.9, 0.3))
    assert s.abstained  # b leads but misses its own, stricter threshold
    [s] = score(index(thresholds=(0.5, 0.1, 0.5)), unit(0.1, 0.3, 0.05))
    assert s.chosen == ["b"]


def test_multi_label_chooses_every_label_over_its_threshold() -> None:
    [s] = score(index(multi=True), unit(0.7, 0.7, 0.1))
    assert sorted(s.chosen) == ["a", "b"] and not s.abstained


def test_scores_one_row_per_text() -> None:
    rows = np.vstack([unit(1, 0, 0), unit(0, 0, 1)])
    assert [s.chosen for s in score(index(), rows)] == [["a"], ["c"]]


def test_readable_names() -> None:
    assert readable("card_arrival") == "card arrival"
    assert readable("needs-triage") == "needs triage"


def test_calibration_keeps_the_ranking_and_makes_scores_probabilities() -> None:
    rng = np.random.default_rng(0)
    sims = rng.uniform(-0.2, 0.9, size=(200, 7)).astype(np.float32)
    probs = calibrate(sims, (3.0, 12.0, -1.0))
    assert ((probs > 0) & (probs < 1)).all()
    assert (np.argsort(-sims, axis=1, kind="stable") == np.argsort(-probs, axis=1, kind="stable")).all()
    top, second = -np.sort(-sims, axis=1)[:, 0], -np.sort(-sims, axis=1)[:, 1]
    expected = 1 / (1 + np.exp(-(3.0 * top + 12.0 * (top - second) - 1.0)))
    assert np.allclose(probs.max(axis=1), expected, atol=1e-5)


def test_a_calibrated_set_thresholds_probabilities() -> None:
    two = LabelIndex(
        names=("a", "b"),
        vectors=np.eye(2, dtype=np.float32),
        thresholds=np.array([0.5, 0.5], dtype=np.float32),
        multi_label=False,
        fallback=None,
    )
    x = np.array([[0.6, 0.8]], dtype=np.float32)  # raw scores 0.6 / 0.8: b leads by 0.2
    [raw] = score(two, x)
    [sure] = score(replace(two, calibration=(1.0, 20.0, -1.0)), x)  # b: sigmoid(0.8 + 4 - 1) ~ 0.98
    [unsure] = score(replace(two, calibration=(1.0, 0.0, -1.0)), x)  # b: sigmoid(-0.2) ~ 0.45
    assert raw.chosen == sure.chosen == ["b"] and sure.labels[0]["score"] > 0.97
    assert unsure.abstained and unsure.labels[0]["name"] == "b" and unsure.labels[0]["score"] < 0.5
