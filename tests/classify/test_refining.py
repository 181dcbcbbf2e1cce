"""Refining label vectors from traffic never makes results worse: a refined head is swapped in only when
it passes an acceptance test on the newest traffic (no labels read), and labels the traffic has not shown
keep their unrefined scores."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from labelwise.classify.index import Gate
from labelwise.classify.labels import Traffic, build_index, to_unit
from labelwise.classify.refining import passes_acceptance
from labelwise.labelset import LabelSetDocument, parse_document

DIM = 48
N_LABELS = 8


def world(seed: int = 0) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Label-name vectors and, per label, messages that share a common (domain) direction: the label's
    name is a weak hint (as names only are), the messages of one label cluster together."""
    rng = np.random.default_rng(seed)
    common = to_unit(rng.standard_normal(DIM))
    names = {f"label{i}": to_unit(rng.standard_normal(DIM)) for i in range(N_LABELS)}
    more = np.random.default_rng(seed + 100)  # rows beyond the first 120 (the acceptance test needs 2,000+)
    clusters = []
    for i in range(N_LABELS):
        center = to_unit(0.35 * names[f"label{i}"] + 0.7 * common + 0.6 * to_unit(rng.standard_normal(DIM)))
        noise = np.vstack([rng.standard_normal((120, DIM)), more.standard_normal((280, DIM))])
        clusters.append(to_unit(center + 0.25 * noise / np.sqrt(DIM)).astype(np.float32))
    return names, clusters


class TableEncoder:
    model_id = "table"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table[t.replace(" ", "")] for t in texts]).astype(np.float32)


def with_examples(seed: int) -> tuple[LabelSetDocument, TableEncoder, list[np.ndarray]]:
    """The world's labels, each with its cluster's first 4 messages as examples (a fitted head)."""
    names, clusters = world(seed)
    table = dict(names)
    labels = []
    for i, name in enumerate(names):
        examples = [f"{name}example{j}" for j in range(4)]
        table.update({text: clusters[i][j] for j, text in enumerate(examples)})
        labels.append({"name": name, "examples": examples})
    return parse_document({"name": "t", "labels": labels}), TableEncoder(table), clusters


def accuracy(index, clusters: list[np.ndarray], labels: range) -> float:  # type: ignore[no-untyped-def]
    hits = [(index.label_scores(clusters[i]).argmax(axis=1) == i).mean() for i in labels]
    return float(np.mean(hits))


def bursts(clusters: list[np.ndarray]) -> np.ndarray:
    """Traffic grouped by label: every message of label 0, then of label 1, ..."""
    return np.vstack(clusters)


def shuffled(clusters: list[np.ndarray], seed: int = 1) -> np.ndarray:
    traffic = np.vstack(clusters)
    return traffic[np.random.default_rng(seed).permutation(len(traffic))]


def test_the_acceptance_test_rejects_bursty_traffic_and_accepts_stationary_traffic() -> None:
    """The same messages grouped by label (a burst per label) fail the acceptance test, shuffled pass."""
    names, clusters = world()
    doc = parse_document({"name": "t", "labels": [{"name": n} for n in names]})
    plain = build_index(doc, TableEncoder(names))
    refined = build_index(doc, TableEncoder(names), traffic=Traffic("all", shuffled(clusters)))
    candidate = (refined.vectors, refined.gate)
    assert refined.gate is not None
    assert passes_acceptance(plain, shuffled(clusters), candidate)
    grouped = bursts(clusters[:5])
    burst_candidate = build_index(doc, TableEncoder(names), traffic=Traffic("burst", grouped))
    assert burst_candidate.gate is None and np.allclose(burst_candidate.vectors, plain.vectors)


def test_the_same_candidate_passes_on_shuffled_traffic_and_fails_on_the_same_messages_in_bursts() -> None:
    """Only the order of the messages differs (the candidate is the same): the acceptance test reads
    the order, and the bursty set is served as without refinement."""
    names, clusters = world()
    doc = parse_document({"name": "t", "labels": [{"name": n} for n in names]})
    plain = build_index(doc, TableEncoder(names))
    stationary = build_index(doc, TableEncoder(names), traffic=Traffic("s", shuffled(clusters[:5])))
    candidate = (stationary.vectors, stationary.gate)
    assert stationary.gate is not None
    assert passes_acceptance(plain, shuffled(clusters[:5]), candidate)
    assert not passes_acceptance(plain, bursts(clusters[:5]), candidate)
    served = build_index(doc, TableEncoder(names), traffic=Traffic("burst", bursts(clusters[:5])))
    assert accuracy(served, clusters, range(N_LABELS)) == accuracy(plain, clusters, range(N_LABELS))


def test_traffic_of_every_label_still_refines() -> None:
    """Shuffled traffic of all labels passes and keeps refinement's gain."""
    names, clusters = world()
    doc = parse_document({"name": "t", "labels": [{"name": n} for n in names]})
    encoder = TableEncoder(names)
    plain = build_index(doc, encoder)
    refined = build_index(doc, encoder, traffic=Traffic("all", shuffled(clusters)))
    everything = range(N_LABELS)
    assert refined.gate is not None
    assert accuracy(refined, clusters, everything) >= accuracy(plain, clusters, everything) + 0.05


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


def test_a_dominant_label_keeps_its_messages_from_labels_with_far_less_evidence() -> None:
    """Traffic dominated by a few labels: a rare label whose refined score beats a dominant label's on
    the dominant label's message does not take it; without dominance (even traffic) it does, and a
    message whose unrefined top label never moved keeps its unrefined answer."""
    base = np.eye(3, DIM, dtype=np.float32)
    x = to_unit(np.eye(1, DIM)[0] + 0.1 * np.eye(1, DIM, 1)[0])[None, :].astype(np.float32)
    refined = np.array([[0.5, 0.9, 0.1]], dtype=np.float32)  # label 1 would win after refinement
    gate = Gate(
        base=base,
        centers=base,
        radius=np.full(3, -np.inf, dtype=np.float32),
        evidence=np.array([1000, 20, 300]),
        dominant=np.array([True, False, False]),
        evidence_ratio=1.5,
    )
    assert gate.apply(x, refined).argmax(axis=1).tolist() == [0]
    assert replace(gate, dominant=np.zeros(3, dtype=bool)).apply(x, refined).argmax(axis=1).tolist() == [1]
    assert replace(gate, evidence=np.array([0, 20, 300])).apply(x, refined).argmax(axis=1).tolist() == [0]


def test_a_fitted_head_is_not_refined_from_bursty_traffic() -> None:
    """A set with examples (a fitted head) passes the same acceptance test: the same messages grouped by
    label leave its head, bias and seed weight as without traffic; shuffled, they refine it."""
    doc, encoder, clusters = with_examples(0)
    plain = build_index(doc, encoder)
    assert plain.bias is not None
    rest = [cluster[4:] for cluster in clusters]
    served = build_index(doc, encoder, traffic=Traffic("burst", bursts(rest)))
    assert np.array_equal(served.vectors, plain.vectors) and np.array_equal(served.bias, plain.bias)
    assert served.seed_weight == plain.seed_weight
    refined = build_index(doc, encoder, traffic=Traffic("all", shuffled(rest)))
    assert not np.array_equal(refined.vectors, plain.vectors)
    assert accuracy(refined, rest, range(N_LABELS)) >= accuracy(plain, rest, range(N_LABELS))


def test_a_refitted_head_keeps_the_unrefined_top_score_for_abstention() -> None:
    """A set with examples and dense, partly off-topic traffic: the refitted head (which scores alone,
    without the nearest-seed term) orders the labels, but every message's top score is the unrefined
    index's, so off-topic messages absorbed by the refit do not start to look in scope."""
    doc, encoder, clusters = with_examples(2)
    rng = np.random.default_rng(3)
    off_topic = to_unit(to_unit(rng.standard_normal(DIM)) + 0.3 * rng.standard_normal((1000, DIM)) / np.sqrt(DIM))
    rest = [cluster[4:] for cluster in clusters]
    traffic = np.vstack([*rest, off_topic]).astype(np.float32)
    plain = build_index(doc, encoder)
    refined = build_index(doc, encoder, traffic=Traffic("mixed", traffic[rng.permutation(len(traffic))]))
    assert refined.unrefined is not None and refined.seed_weight == 0.0  # refitted on dense traffic
    assert not np.array_equal(refined.vectors, plain.vectors)
    assert np.allclose(refined.label_scores(traffic).max(axis=1), plain.label_scores(traffic).max(axis=1), atol=1e-5)
    assert accuracy(refined, rest, range(N_LABELS)) >= accuracy(plain, rest, range(N_LABELS))
