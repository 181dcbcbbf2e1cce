"""The default model on the shipped support label set and hand-written messages."""

from __future__ import annotations

import csv
from pathlib import Path

from labelwise.classify.classifier import Classifier
from labelwise.classify.labels import LabelCache
from labelwise.labelset import load_yaml

ROOT = Path(__file__).parent.parent.parent


def test_default_model_gets_at_least_80_percent_of_support_messages_right(encoder) -> None:  # type: ignore[no-untyped-def]
    doc = load_yaml((ROOT / "examples" / "support.yaml").read_text())
    with open(ROOT / "tests" / "data" / "support_messages.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 40 and {r["label"] for r in rows} <= {label.name for label in doc.labels}
    classifier = Classifier(encoder=encoder, cache=LabelCache())
    scored = classifier.classify(1, doc, [r["text"] for r in rows])
    right = sum(s.labels[0]["name"] == r["label"] for s, r in zip(scored, rows, strict=True))
    assert right / len(rows) >= 0.80, f"{right}/{len(rows)}"


def test_label_vectors_are_cached_per_version_and_model(encoder) -> None:  # type: ignore[no-untyped-def]
    doc = load_yaml((ROOT / "examples" / "support.yaml").read_text())
    classifier = Classifier(encoder=encoder, cache=LabelCache(max_entries=2))
    classifier.classify(1, doc, ["hello"])
    first = classifier.cache.get_or_build(1, doc, encoder)
    classifier.classify(1, doc, ["again"])
    assert classifier.cache.get_or_build(1, doc, encoder) is first and len(classifier.cache) == 1
    classifier.classify(2, doc, ["x"])
    classifier.classify(3, doc, ["y"])
    assert len(classifier.cache) == 2 and classifier.cache.get_or_build(1, doc, encoder) is not first
