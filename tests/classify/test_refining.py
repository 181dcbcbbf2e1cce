"""Refining label vectors from traffic never makes results worse: labels the traffic has not shown stay
as they were, and a label that moved scores its refined score only near the messages that moved it."""

from __future__ import annotations

import numpy as np

from labelwise.classify.labels import Traffic, build_index, to_unit
from labelwise.labelset import parse_document

DIM = 48
N_LABELS = 8


def world(seed: int = 0) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Label-name vectors and, per label, messages that share a common (domain) direction: the label's
    name is a weak hint (as names only are), the messages of one label cluster together."""
    rng = np.random.default_rng(seed)
    common = to_unit(rng.standard_normal(DIM))
    names = {f"label{i}": to_unit(rng.standard_normal(DIM)) for i in range(N_LABELS)}
    clusters = []
    for i in range(N_LABELS):
        center = to_unit(0.35 * names[f"label{i}"] + 0.7 * common + 0.6 * to_unit(rng.standard_normal(DIM)))
        clusters.append(to_unit(center + 0.25 * rng.standard_normal((120, DIM)) / np.sqrt(DIM)).astype(np.float32))
    return names, clusters


class TableEncoder:
    model_id = "table"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t.replace(" ", "")] for t in texts]).astype(np.float32)


def accuracy(index, clusters: list[np.ndarray], labels: range) -> float:  # type: ignore[no-untyped-def]
    hits = [(index.label_scores(clusters[i]).argmax(axis=1) == i).mean() for i in labels]
    return float(np.mean(hits))


def test_bursty_traffic_of_a_few_labels_costs_the_other_labels_nothing() -> None:
    """Traffic of labels 0-1 only (a burst): the other labels' messages score as without refinement."""
    names, clusters = world()
    doc = parse_document({"name": "t", "labels": [{"name": n} for n in names]})
    encoder = TableEncoder(names)
    plain = build_index(doc, encoder)
    refined = build_index(doc, encoder, traffic=Traffic("burst", np.vstack(clusters[:2])))
    unseen = range(2, N_LABELS)
    assert accuracy(refined, clusters, unseen) >= accuracy(plain, clusters, unseen) - 0.01
    assert accuracy(refined, clusters, range(2)) >= accuracy(plain, clusters, range(2))


def test_traffic_of_every_label_still_refines() -> None:
    """Shuffled traffic of all labels keeps refinement's gain."""
    names, clusters = world()
    doc = parse_document({"name": "t", "labels": [{"name": n} for n in names]})
    encoder = TableEncoder(names)
    plain = build_index(doc, encoder)
    traffic = np.vstack(clusters)[np.random.default_rng(1).permutation(N_LABELS * 120)]
    refined = build_index(doc, encoder, traffic=Traffic("all", traffic))
    everything = range(N_LABELS)
    assert accuracy(refined, clusters, everything) >= accuracy(plain, clusters, everything)


def test_refinement_orders_labels_but_keeps_the_unrefined_top_score_for_abstention() -> None:
    """With 30% off-topic traffic absorbed by some label, every message's top score (what abstention and
    thresholds read) is still the unrefined one, so off-topic messages do not start to look in scope."""
    names, clusters = world(2)
    doc = parse_document({"name": "t", "labels": [{"name": n} for n in names]})
    encoder = TableEncoder(names)
    rng = np.random.default_rng(3)
    off_topic = to_unit(to_unit(rng.standard_normal(DIM)) + 0.3 * rng.standard_normal((300, DIM)) / np.sqrt(DIM))
    traffic = np.vstack([*clusters, off_topic]).astype(np.float32)
    plain = build_index(doc, encoder)
    refined = build_index(doc, encoder, traffic=Traffic("mixed", traffic[rng.permutation(len(traffic))]))
    assert np.allclose(refined.label_scores(traffic).max(axis=1), plain.label_scores(traffic).max(axis=1), atol=1e-5)
    assert accuracy(refined, clusters, range(N_LABELS)) >= accuracy(plain, clusters, range(N_LABELS))
