"""Evaluate a label set on labelled messages, through the worker's own code path (Classifier.classify).

Definitions (``n`` rows of ``text,label``; a gold label that is not in the set, or is the set's
fallback, is *out of set*: the right answer for it is to abstain):

- ``accuracy``: share of rows whose top-ranked label is the gold label (thresholds ignored).
- ``macro_f1``: mean F1 of the top-ranked label over the set's labels seen as gold or as top label.
- ``coverage``: share of rows not abstained, at the set's thresholds and margin.
- ``covered_accuracy``: among rows not abstained, share whose chosen label is the gold label.
- ``per_label``: precision, recall and F1 of the chosen label at the set's thresholds (an abstention
  is a miss), with the gold ``support``.
- ``sweep``: one set-wide threshold at a time (per-label thresholds replaced by it, the margin
  kept): the coverage and covered accuracy it gives.
- ``reliability``: how far the top score is from the chance that the top label is right: ``ece``
  (expected calibration error: the top scores in 10 equal bins over [0, 1], the mean of
  ``|accuracy - mean score|`` weighted by the bin's share of rows) and the accuracy of the rows in
  score bins. A calibrated set (``calibration`` in its document, fitted by :func:`fit_calibration`)
  should have an ECE of a few points on new messages like its tuning sample.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import Traffic, calibrate
from labelwise.classify.scoring import Scored
from labelwise.errors import InvalidInputError
from labelwise.labelset import Calibration, LabelSetDocument

BATCH_SIZE = 64


@dataclass(frozen=True)
class Row:
    text: str
    label: str


@dataclass(frozen=True)
class Outcome:
    """What the classifier said about one row, reduced to what the metrics need."""

    gold: str
    top: str
    top_score: float
    second_score: float | None
    chosen: tuple[str, ...]
    abstained: bool


def read_labelled(path: Path) -> list[Row]:
    """Rows of a CSV file with a ``text,label`` header, or of JSONL with ``text`` and ``label`` keys.

    Raises InvalidInputError naming the file and line when a row lacks either field.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read {path}: {e}", field="data") from e
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        records = [(i, _json_line(path, i, line)) for i, line in enumerate(raw.splitlines(), 1) if line.strip()]
    else:
        records = list(enumerate(csv.DictReader(raw.splitlines()), 2))
    rows = []
    for line_no, rec in records:
        text, label = rec.get("text"), rec.get("label")
        if not isinstance(text, str) or not text.strip() or not isinstance(label, str) or not label.strip():
            raise InvalidInputError(f"{path}:{line_no}: needs a non-empty text and label", field="data")
        rows.append(Row(text=text, label=label.strip()))
    if not rows:
        raise InvalidInputError(f"{path}: no rows", field="data")
    return rows


def read_texts(path: Path) -> list[str]:
    """Unlabeled texts: JSONL with a ``text`` key, CSV with a ``text`` column, else one text per line.

    Raises InvalidInputError naming the file (and line) when it cannot be read or holds no text.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInputError(f"cannot read {path}: {e}", field="traffic") from e
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        texts = [_json_line(path, i, line).get("text") for i, line in enumerate(raw.splitlines(), 1) if line.strip()]
    elif suffix == ".csv":
        reader = csv.DictReader(raw.splitlines())
        if "text" not in (reader.fieldnames or []):
            raise InvalidInputError(f"{path}: needs a text column", field="traffic")
        texts = [rec.get("text") for rec in reader]
    else:
        texts = raw.splitlines()
    kept = [t for t in texts if isinstance(t, str) and t.strip()]
    if not kept:
        raise InvalidInputError(f"{path}: no texts", field="traffic")
    return kept


def _json_line(path: Path, line_no: int, line: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{path}:{line_no}: not JSON: {e}", field="data") from e
    if not isinstance(rec, dict):
        raise InvalidInputError(f"{path}:{line_no}: not a JSON object", field="data")
    return rec


def eval_version_id(doc: LabelSetDocument) -> int:
    """A label-cache id for a document that is not stored (negative: never a database id)."""
    return -int(doc.content_hash()[:12], 16)


def predict(
    classifier: Classifier,
    doc: LabelSetDocument,
    rows: Sequence[Row],
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
    traffic: Traffic | None = None,
) -> list[Outcome]:
    """Classify every row exactly as the worker would; ``on_batch(n_done_in_batch)`` reports progress.

    With ``traffic`` (unlabeled messages of the set), as the worker will once it has refined the label
    vectors from that traffic."""
    version_id = eval_version_id(doc)
    outcomes: list[Outcome] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        scored = classifier.classify(version_id, doc, [r.text for r in batch], traffic=traffic)
        outcomes.extend(to_outcome(r.label, s) for r, s in zip(batch, scored, strict=True))
        if on_batch is not None:
            on_batch(len(batch))
    return outcomes


def to_outcome(gold: str, scored: Scored) -> Outcome:
    first = scored.labels[0]
    second = float(scored.labels[1]["score"]) if len(scored.labels) > 1 else None
    return Outcome(
        gold=gold,
        top=str(first["name"]),
        top_score=float(first["score"]),
        second_score=second,
        chosen=tuple(scored.chosen),
        abstained=scored.abstained,
    )


def _in_set(doc: LabelSetDocument) -> set[str]:
    return {label.name for label in doc.labels} - ({doc.fallback} if doc.fallback else set())


def _right(o: Outcome, labels: set[str]) -> bool:
    """The final decision is right: the gold label chosen, or an out-of-set message abstained."""
    return o.abstained if o.gold not in labels else (not o.abstained and o.gold in o.chosen)


def metrics(outcomes: Sequence[Outcome], doc: LabelSetDocument) -> dict[str, Any]:
    """The summary figures (see the module docstring); rates are None where their base is empty."""
    labels = _in_set(doc)
    n = len(outcomes)
    covered = [o for o in outcomes if not o.abstained]
    out_of_set = [o for o in outcomes if o.gold not in labels]
    return {
        "n": n,
        "accuracy": _rate(sum(o.top == o.gold for o in outcomes), n),
        "macro_f1": macro_f1([o.gold for o in outcomes], [o.top for o in outcomes], labels),
        "coverage": _rate(len(covered), n),
        "covered_accuracy": _rate(sum(o.gold in o.chosen for o in covered), len(covered)),
        "decision_accuracy": _rate(sum(_right(o, labels) for o in outcomes), n),
        "out_of_set": len(out_of_set),
        "out_of_set_abstained": _rate(sum(o.abstained for o in out_of_set), len(out_of_set)),
    }


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def macro_f1(gold: Sequence[str], predicted: Sequence[str], labels: set[str]) -> float | None:
    """Mean per-label F1 over ``labels`` that occur in ``gold`` or ``predicted``."""
    seen = sorted(labels & (set(gold) | set(predicted)))
    if not seen:
        return None
    f1s = [_prf(gold, [(p,) for p in predicted], name)[2] for name in seen]
    return float(np.mean(f1s))


def _prf(gold: Sequence[str], chosen: Sequence[tuple[str, ...]], name: str) -> tuple[float, float, float, int]:
    tp = sum(g == name and name in c for g, c in zip(gold, chosen, strict=True))
    n_pred = sum(name in c for c in chosen)
    support = sum(g == name for g in gold)
    p = tp / n_pred if n_pred else 0.0
    r = tp / support if support else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1, support


def per_label(outcomes: Sequence[Outcome], doc: LabelSetDocument) -> list[dict[str, Any]]:
    """Precision, recall, F1 and support of each label at the set's thresholds, in document order."""
    gold = [o.gold for o in outcomes]
    chosen = [() if o.abstained else o.chosen for o in outcomes]
    table = []
    for name in (label.name for label in doc.labels):
        p, r, f1, support = _prf(gold, chosen, name)
        table.append({"label": name, "precision": p, "recall": r, "f1": f1, "support": support})
    return table


def confused_pairs(outcomes: Sequence[Outcome], *, limit: int = 10) -> list[dict[str, Any]]:
    """The most frequent (gold, top-ranked) pairs that differ, most frequent first."""
    pairs = Counter((o.gold, o.top) for o in outcomes if o.gold != o.top)
    return [{"gold": g, "predicted": p, "count": c} for (g, p), c in pairs.most_common(limit)]


def confusion(outcomes: Sequence[Outcome], doc: LabelSetDocument) -> tuple[list[str], np.ndarray]:
    """Row labels (the set's labels, then out-of-set golds) and counts[gold, top-ranked label]."""
    names = [label.name for label in doc.labels]
    extra = sorted({o.gold for o in outcomes} - set(names))
    rows = names + extra
    at = {name: i for i, name in enumerate(rows)}
    counts = np.zeros((len(rows), len(names)), dtype=np.int64)
    for o in outcomes:
        counts[at[o.gold], names.index(o.top)] += 1
    return rows, counts


def _covered(o: Outcome, threshold: float, margin: float) -> bool:
    close = margin > 0 and o.second_score is not None and o.top_score - o.second_score < margin
    return o.top_score >= threshold and not close


def at_threshold(outcomes: Sequence[Outcome], threshold: float, *, margin: float = 0.0) -> dict[str, Any]:
    """Coverage and covered accuracy with one set-wide threshold (single-label decision rule)."""
    covered = [o for o in outcomes if _covered(o, threshold, margin)]
    return {
        "threshold": round(float(threshold), 4),
        "coverage": _rate(len(covered), len(outcomes)),
        "covered_accuracy": _rate(sum(o.top == o.gold for o in covered), len(covered)),
        "n_covered": len(covered),
    }


def sweep(outcomes: Sequence[Outcome], *, margin: float = 0.0, points: int = 41) -> list[dict[str, Any]]:
    """The coverage/accuracy trade-off at ``points`` thresholds spread over the top scores, lowest first.

    Coverage never rises as the threshold rises.
    """
    tops = np.array([o.top_score for o in outcomes])
    grid = np.unique(np.round(np.quantile(tops, np.linspace(0.0, 1.0, points)), 4))
    return [at_threshold(outcomes, float(t), margin=margin) for t in grid]


def tune(
    outcomes: Sequence[Outcome],
    doc: LabelSetDocument,
    *,
    target_precision: float | None = None,
    target_coverage: float | None = None,
    min_support: int = 20,
) -> dict[str, Any]:
    """Suggest the set's threshold (and per-label ones where they raise coverage) for one target.

    ``target_precision``: the lowest threshold whose covered accuracy reaches it (most coverage).
    ``target_coverage``: the highest threshold that still covers that share. Per-label thresholds are
    suggested only for a precision target, for labels ranked first at least ``min_support`` times,
    and only when together they cover more than the set threshold alone at the target. The figures
    under ``expected`` are measured on these outcomes (a sample: expect some drift on new traffic).
    Raises ValueError unless exactly one target is given.
    """
    if (target_precision is None) == (target_coverage is None):
        raise ValueError("give exactly one of target_precision and target_coverage")
    margin = doc.margin or 0.0
    candidates = sorted({round(o.top_score, 4) for o in outcomes})
    if target_coverage is not None:
        fits = [t for t in candidates if (at_threshold(outcomes, t, margin=margin)["coverage"] or 0) >= target_coverage]
        threshold = max(fits) if fits else min(candidates)
        return _suggestion(outcomes, threshold, {}, margin=margin, reached=bool(fits))
    assert target_precision is not None
    threshold, reached = _lowest_precise(outcomes, candidates, target_precision, margin)
    set_only = _suggestion(outcomes, threshold, {}, margin=margin, reached=reached)
    overrides = _label_thresholds(outcomes, doc, threshold, target_precision, margin, min_support)
    if not overrides:
        return set_only
    combined = _suggestion(outcomes, threshold, overrides, margin=margin, reached=reached)
    better = (combined["expected"]["coverage"] or 0) > (set_only["expected"]["coverage"] or 0)
    precise = (combined["expected"]["covered_accuracy"] or 0) >= target_precision
    return combined if better and precise else set_only


def _lowest_precise(
    outcomes: Sequence[Outcome], candidates: list[float], target: float, margin: float
) -> tuple[float, bool]:
    for t in candidates:
        if (at_threshold(outcomes, t, margin=margin)["covered_accuracy"] or 0) >= target:
            return t, True
    return (candidates[-1] + 1e-4 if candidates else 1.0), False


def _label_thresholds(
    outcomes: Sequence[Outcome], doc: LabelSetDocument, threshold: float, target: float, margin: float, min_support: int
) -> dict[str, float]:
    overrides = {}
    for name in (label.name for label in doc.labels):
        mine = [o for o in outcomes if o.top == name]
        if len(mine) < min_support:
            continue
        t, ok = _lowest_precise(mine, sorted({round(o.top_score, 4) for o in mine}), target, margin)
        if ok and abs(t - threshold) > 0.005:
            overrides[name] = t
    return overrides


def _suggestion(
    outcomes: Sequence[Outcome], threshold: float, overrides: dict[str, float], *, margin: float, reached: bool
) -> dict[str, Any]:
    covered = [o for o in outcomes if _covered(o, overrides.get(o.top, threshold), margin)]
    return {
        "threshold": round(float(threshold), 4),
        "labels": {k: round(float(v), 4) for k, v in overrides.items()},
        "reached": reached,
        "expected": {
            "coverage": _rate(len(covered), len(outcomes)),
            "covered_accuracy": _rate(sum(o.top == o.gold for o in covered), len(covered)),
            "n": len(outcomes),
        },
    }


def report(outcomes: Sequence[Outcome], doc: LabelSetDocument, *, with_sweep: bool = False) -> dict[str, Any]:
    """Everything ``labelwise eval`` prints, as one JSON-able dict."""
    out = {
        **metrics(outcomes, doc),
        "label_set": doc.name,
        "threshold": doc.threshold,
        "margin": doc.margin,
        "per_label": per_label(outcomes, doc),
        "confused": confused_pairs(outcomes),
    }
    if with_sweep:
        out["sweep"] = sweep(outcomes, margin=doc.margin or 0.0)
    return out


def plot(path: Path, outcomes: Sequence[Outcome], doc: LabelSetDocument) -> None:
    """Write a PNG: the coverage/accuracy curve and the confusion heat map (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sweep(outcomes, margin=doc.margin or 0.0)
    rows, counts = confusion(outcomes, doc)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6.5))
    left.plot([p["coverage"] for p in points], [p["covered_accuracy"] for p in points], marker=".")
    here = at_threshold(outcomes, doc.threshold, margin=doc.margin or 0.0)
    if here["coverage"]:
        left.scatter([here["coverage"]], [here["covered_accuracy"]], color="red", zorder=3, label="set threshold")
        left.legend()
    left.set(xlabel="coverage (share not abstained)", ylabel="accuracy on covered", title="threshold sweep")
    left.grid(alpha=0.3)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    right.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    small = 6 if len(rows) > 20 else 9
    right.set_xticks(range(counts.shape[1]), [label.name for label in doc.labels], rotation=90, fontsize=small)
    right.set_yticks(range(len(rows)), rows, fontsize=small)
    right.set(xlabel="top-ranked label", ylabel="gold label", title="confusion (share of each gold row)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def auroc(scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` separating ``positive`` rows from the rest (ties count half)."""
    s, pos = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        raise ValueError("need both positive and negative rows")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2  # average rank of a tie group (1-based)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- calibration: Platt scaling on the top score and its lead, and how reliable scores are ---------

CALIBRATION_L2 = 1e-5  # keeps the fit finite on a sample the scores separate perfectly
RELIABILITY_BINS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.0))


def fit_calibration(outcomes: Sequence[Outcome], *, use_margin: bool = True) -> Calibration:
    """Fit ``P(top label right) = sigmoid(a * top + c * (top - second) + b)`` on raw-score outcomes.

    Logistic regression by Newton's method on the two features; a slope that comes out negative is
    dropped (set to 0) and the rest refitted, so the mapping never reorders labels. Raises ValueError
    when the sample is all right or all wrong (nothing to calibrate against).
    """
    y = np.array([o.top == o.gold for o in outcomes], dtype=np.float64)
    if y.all() or not y.any():
        raise ValueError("calibration needs both right and wrong top labels in the sample")
    top = np.array([o.top_score for o in outcomes], dtype=np.float64)
    lead = np.array([o.top_score - (o.second_score if o.second_score is not None else o.top_score) for o in outcomes])
    active = [0, 1] if use_margin else [0]
    while True:
        coef = _logistic(np.column_stack([np.stack([top, lead], axis=1)[:, active], np.ones(len(y))]), y)
        negative = [f for f, w in zip(active, coef[:-1], strict=True) if w < 0]
        if not negative:
            break
        active = [f for f in active if f not in negative]
    slopes = dict(zip(active, coef[:-1], strict=True))
    return Calibration(
        score=round(float(slopes.get(0, 0.0)), 4),
        margin=round(float(slopes.get(1, 0.0)), 4),
        bias=round(float(coef[-1]), 4),
    )


def _logistic(x: np.ndarray, y: np.ndarray, *, steps: int = 50) -> np.ndarray:
    """Coefficients (last one the intercept) of an L2-regularised logistic regression, Newton steps."""
    w = np.zeros(x.shape[1])
    reg = CALIBRATION_L2 * len(y) * np.r_[np.ones(x.shape[1] - 1), 0.0]
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -50, 50)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def calibrated(outcomes: Sequence[Outcome], calibration: Calibration) -> list[Outcome]:
    """The outcomes with their top two scores mapped to probabilities (labels and decisions kept)."""
    cal = (calibration.score, calibration.margin, calibration.bias)
    out = []
    for o in outcomes:
        second = o.second_score if o.second_score is not None else o.top_score
        p = calibrate(np.array([[o.top_score, second]]), cal)[0]
        out.append(
            Outcome(o.gold, o.top, float(p[0]), None if o.second_score is None else float(p[1]), o.chosen, o.abstained)
        )
    return out


def reliability(outcomes: Sequence[Outcome], *, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error of the top score and the accuracy in score bins (see the module docstring)."""
    conf = np.clip(np.array([o.top_score for o in outcomes], dtype=np.float64), 0.0, 1.0)
    right = np.array([o.top == o.gold for o in outcomes], dtype=np.float64)
    which = np.minimum((conf * bins).astype(int), bins - 1)
    ece = sum(
        abs(right[which == i].mean() - conf[which == i].mean()) * (which == i).mean()
        for i in range(bins)
        if (which == i).any()
    )
    table = []
    for lo, hi in RELIABILITY_BINS:
        inside = (conf >= lo) & ((conf < hi) | (hi >= 1.0))
        table.append(
            {
                "bin": f"{lo:.1f}-{hi:.1f}",
                "n": int(inside.sum()),
                "mean_score": float(conf[inside].mean()) if inside.any() else None,
                "accuracy": float(right[inside].mean()) if inside.any() else None,
            }
        )
    return {"ece": float(ece), "n": len(outcomes), "bins": table}
