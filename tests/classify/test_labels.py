"""Label-side math on a fake encoder: text vectors, the fitted head, nearest-seed scores, traffic refinement."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from labelwise.classify import refining
from labelwise.classify.labels import (
    DENSE_TRAFFIC_PER_LABEL,
    LabelCache,
    Traffic,
    build_index,
    label_texts,
    refine_head,
    to_unit,
)
from labelwise.classify.scoring import score
from labelwise.labelset import parse_document

DIM = 32


class FakeEncoder:
    """A fixed random unit vector per text; ``table`` pins chosen texts to given vectors."""

    model_id = "fake"

    def __init__(self, table: dict[str, np.ndarray] | None = None) -> None:
        self.table = table or {}
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        rows = []
        for t in texts:
            if t in self.table:
                rows.append(self.table[t])
            else:
                seed = int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)
                rows.append(np.random.default_rng(seed).standard_normal(DIM))
        return to_unit(np.array(rows, dtype=np.float32))


def doc(labels: list[dict[str, object]], **over: object):  # type: ignore[no-untyped-def]
    return parse_document({"name": "t", "labels": labels, **over})


def test_label_text_is_the_name_or_name_and_description() -> None:
    d = doc([{"name": "card_arrival"}, {"name": "b", "description": "About b."}])
    assert label_texts(d.labels[0]) == ["card arrival"]
    assert label_texts(d.labels[1]) == ["b: About b.", "About b."]


def test_without_examples_the_score_is_the_cosine_with_the_text_vector() -> None:
    enc = FakeEncoder()
    d = doc([{"name": "a", "description": "About a."}, {"name": "b"}])
    index = build_index(d, enc)
    expected = to_unit(enc.encode(["a: About a.", "About a."]).mean(axis=0))
    assert np.allclose(index.vectors[0], expected, atol=1e-6) and index.bias is None and index.seed_weight == 0
    x = enc.encode(["some message"])
    assert np.allclose(index.label_scores(x), x @ index.vectors.T, atol=1e-6)


def test_with_examples_a_fitted_head_and_the_nearest_seed_classify_the_examples() -> None:
    enc = FakeEncoder()
    labels = [{"name": n, "examples": [f"{n} example {i}" for i in range(4)]} for n in ("a", "b", "c")]
    index = build_index(doc(labels), enc)
    assert index.bias is not None and index.seed_weight == 0.5 and len(index.seeds) == 3 * 5
    for j, n in enumerate("abc"):
        sims = index.label_scores(enc.encode([f"{n} example {i}" for i in range(4)]))
        assert (sims.argmax(axis=1) == j).all()
    x = enc.encode(["another"])
    head = x @ index.vectors.T + index.bias
    nearest = np.array([(x @ index.seeds[index.seed_owner == j].T).max() for j in range(3)])
    assert np.allclose(index.label_scores(x), 0.5 * head + 0.5 * nearest, atol=1e-5)


def test_multi_label_sets_keep_cosine_scores() -> None:
    labels = [{"name": n, "examples": [f"{n} example"]} for n in ("a", "b")]
    index = build_index(doc(labels, multi_label=True), FakeEncoder())
    assert index.bias is None and index.seed_weight == 0


def clusters(rng: np.random.Generator, n_per: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centers = to_unit(rng.standard_normal((3, DIM)))
    points = to_unit(np.repeat(centers, n_per, axis=0) + 0.25 * rng.standard_normal((3 * n_per, DIM)))
    return centers, points.astype(np.float32), np.repeat(np.arange(3), n_per)


def test_traffic_refinement_moves_label_vectors_onto_their_messages() -> None:
    """Names that point only roughly at their clusters get more messages right after refinement from
    shuffled (stationary) traffic, enough of it for the acceptance test (2,000+ messages)."""
    rng = np.random.default_rng(1)
    centers, points, gold = clusters(rng)
    names = to_unit(centers + 0.9 * rng.standard_normal(centers.shape)).astype(np.float32)
    enc = FakeEncoder({n: names[i] for i, n in enumerate("abc")})
    d = doc([{"name": n} for n in "abc"])
    before = build_index(d, enc)
    seen = np.tile(points, (12, 1)) + 0.05 * rng.standard_normal((12 * len(points), DIM))
    after = build_index(d, enc, traffic=Traffic("t1", to_unit(seen[rng.permutation(len(seen))]).astype(np.float32)))
    acc = [float((i.label_scores(points).argmax(axis=1) == gold).mean()) for i in (before, after)]
    assert acc[1] >= 0.85 and acc[1] >= acc[0] + 0.1
    off = build_index(doc([{"name": n} for n in "abc"], refine_from_traffic=False), enc, traffic=Traffic("t1", points))
    assert np.allclose(off.vectors, before.vectors)


def test_refinement_with_examples_refits_the_head(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The refit itself: the acceptance test (2,000+ messages, tests/classify/test_refining.py) is let through."""
    monkeypatch.setattr(refining, "passes_acceptance", lambda *_: True)
    rng = np.random.default_rng(2)
    centers, points, gold = clusters(rng)
    table = {
        f"{n} {i}": to_unit(centers[j] + 0.6 * rng.standard_normal(DIM)) for j, n in enumerate("abc") for i in range(2)
    }
    enc = FakeEncoder(table)
    index = build_index(doc([{"name": n, "examples": [f"{n} 0", f"{n} 1"]} for n in "abc"]), enc)
    vectors, bias = refine_head(index, points)
    assert bias is not None and vectors.shape == index.vectors.shape
    acc_before = float(((points @ index.vectors.T + index.bias).argmax(axis=1) == gold).mean())
    acc_after = float(((points @ vectors.T + bias).argmax(axis=1) == gold).mean())
    assert acc_after >= acc_before + 0.05


def test_dense_traffic_self_trains_the_head_and_drops_the_nearest_seed_term(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """300+ messages per label: the head alone scores, refitted on the pseudo-labelled traffic (the
    acceptance test, which needs 2,000+ messages, is let through: see tests/classify/test_refining.py)."""
    monkeypatch.setattr(refining, "passes_acceptance", lambda *_: True)
    rng = np.random.default_rng(5)
    centers, points, gold = clusters(rng, n_per=DENSE_TRAFFIC_PER_LABEL)
    table = {
        f"{n} {i}": to_unit(centers[j] + 0.6 * rng.standard_normal(DIM)) for j, n in enumerate("abc") for i in range(2)
    }
    enc = FakeEncoder(table)
    d = doc([{"name": n, "examples": [f"{n} 0", f"{n} 1"]} for n in "abc"])
    sparse = build_index(d, enc, traffic=Traffic("few", points[::2]))
    dense = build_index(d, enc, traffic=Traffic("many", points))
    assert sparse.seed_weight == 0.5 and dense.seed_weight == 0.0 and dense.bias is not None
    assert float((dense.label_scores(points).argmax(axis=1) == gold).mean()) >= 0.95


def test_centering_subtracts_the_traffic_mean_from_messages() -> None:
    rng = np.random.default_rng(3)
    _, points, _ = clusters(rng)
    d = doc([{"name": n} for n in "abc"], refine_from_traffic=False)
    index = build_index(d, FakeEncoder(), traffic=Traffic("c", points, center=True))
    assert index.center is not None and np.allclose(index.center, points.mean(axis=0), atol=1e-6)
    x = points[:2]
    assert np.allclose(index.label_scores(x), to_unit(x - index.center) @ index.vectors.T, atol=1e-5)


def test_the_cache_rebuilds_for_a_new_traffic_key_only() -> None:
    rng = np.random.default_rng(4)
    _, points, _ = clusters(rng)
    enc, cache = FakeEncoder(), LabelCache()
    d = doc([{"name": n} for n in "abc"])
    first = cache.get_or_build(1, d, enc, traffic=Traffic("k1", points))
    assert cache.get_or_build(1, d, enc, traffic=Traffic("k1", points)) is first
    assert cache.get_or_build(1, d, enc, traffic=Traffic("k2", points)) is not first
    assert cache.get_or_build(1, d, enc) is not first and len(cache) == 2  # k2 replaced k1; plus no traffic


def test_margin_makes_a_single_label_set_abstain_on_close_calls() -> None:
    enc = FakeEncoder()
    index = build_index(doc([{"name": "a"}, {"name": "b"}], threshold=-1.0, margin=2.0, fallback="other"), enc)
    [s] = score(index, enc.encode(["anything"]))
    assert s.abstained and s.chosen == ["other"]
    index = build_index(doc([{"name": "a"}, {"name": "b"}], threshold=-1.0), enc)
    assert not score(index, enc.encode(["anything"]))[0].abstained
