"""Documents read in windows: pooled scores, evidence spans, and short messages scored as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.classify.classifier import Classifier
from labelwise.classify.documents import encode_texts
from labelwise.classify.labels import build_index
from labelwise.classify.scoring import score, score_documents
from labelwise.classify.sentence import resolve_model_path
from labelwise.classify.windows import windower_for
from labelwise.labelset import load_yaml
from labelwise.settings import DEFAULT_MODEL

DATA = Path(__file__).parent.parent / "data"
NEEDLE = "Also, I was charged twice for my subscription this month and I need a refund."
OFFICE = [
    "Our team moved to the new office on the third floor last spring.",
    "The kitchen now has a larger fridge and a window facing the park.",
    "On Fridays we share lunch and talk about the books we are reading.",
    "Maria organised the summer picnic by the lake, and it rained only once.",
    "The plants near the stairs need water twice a week.",
    "Someone suggested a quiz night, and the idea was popular.",
]


def long_document(chars: int = 10_000, *, needle: str = NEEDLE) -> str:
    """At least ``chars`` characters (within a sentence more) of office small talk, ``needle`` the last sentence."""
    sentences: list[str] = []
    while sum(len(s) + 1 for s in sentences) + len(needle) < chars:
        sentences.append(OFFICE[len(sentences) % len(OFFICE)])
    return " ".join([*sentences, needle])


@pytest.fixture(scope="module")
def classifier(encoder) -> Classifier:  # type: ignore[no-untyped-def]
    windower = windower_for(Path(resolve_model_path(DEFAULT_MODEL)), budget_tokens=8192)
    return Classifier(encoder=encoder, windower=windower)


def test_short_messages_score_exactly_as_before(classifier: Classifier) -> None:
    doc = load_yaml((DATA / "tiny.yaml").read_text())
    index = build_index(doc, classifier.encoder)
    texts = ["I was charged twice this month", "I cannot log in", "The app crashes when I open settings"]
    before = score(index, classifier.encoder.encode(texts))
    after = score_documents(index, encode_texts(classifier.encoder, classifier.windower, texts))
    for b, a, text in zip(before, after, texts, strict=True):
        assert (a.labels, a.chosen, a.abstained) == (b.labels, b.chosen, b.abstained)
        assert a.windows == 1 and a.truncated is False
        assert [(e["label"], e["start"], e["end"]) for e in a.evidence] == [(a.chosen[0], 0, len(text))]


def test_label_sentence_at_the_end_of_10000_characters_is_found_with_its_evidence(classifier: Classifier) -> None:
    text = long_document()
    assert 10_000 <= len(text) < 10_100
    doc = load_yaml((DATA / "tiny.yaml").read_text())
    [scored] = classifier.classify(1, doc, [text])
    assert scored.chosen == ["billing"] and not scored.abstained
    assert scored.windows > 5 and scored.truncated is False
    [evidence] = scored.evidence
    assert evidence["label"] == "billing" and evidence["end"] - evidence["start"] < 2_000
    assert NEEDLE in text[evidence["start"] : evidence["end"]]


def test_without_windows_the_same_document_misses_the_label(encoder) -> None:  # type: ignore[no-untyped-def]
    """The defect: the encoder alone reads only the first 256 tokens."""
    doc = load_yaml((DATA / "tiny.yaml").read_text())
    [scored] = Classifier(encoder=encoder).classify(1, doc, [long_document()])
    assert scored.chosen != ["billing"]


def test_past_the_token_budget_the_text_is_not_read_and_the_result_says_so(encoder) -> None:  # type: ignore[no-untyped-def]
    """The needle after the budget is not read: truncated, and its label not found."""
    small = windower_for(Path(resolve_model_path(DEFAULT_MODEL)), budget_tokens=500)
    doc = load_yaml((DATA / "tiny.yaml").read_text())
    [scored] = Classifier(encoder=encoder, windower=small).classify(1, doc, [long_document()])
    assert scored.truncated is True and scored.windows < 40
    assert all(e["end"] < 3_000 for e in scored.evidence)


def test_a_short_texts_vector_kept_as_traffic_is_the_encoders_own(classifier: Classifier) -> None:
    texts = ["I was charged twice this month", long_document(3_000)]
    encoded = classifier.encode(texts)
    vectors = encoded.text_vectors()
    assert (vectors[0] == encoded.vectors[0]).all(), "the same call's vector, not renormalised"
    assert abs(float(vectors[1] @ vectors[1]) - 1.0) < 1e-5
