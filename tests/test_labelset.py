"""The label-set document: what validates, what fails, with field-level errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.errors import InvalidDocumentError
from labelwise.labelset import load_yaml, parse_document

ROOT = Path(__file__).parent.parent


def doc(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "support", "labels": [{"name": "billing"}, {"name": "refund"}]}
    return {**base, **over}


def test_the_shipped_example_is_valid() -> None:
    parsed = load_yaml((ROOT / "examples" / "support.yaml").read_text())
    assert parsed.name == "support" and 8 <= len(parsed.labels) <= 12
    assert all(label.description and label.examples for label in parsed.labels)


def test_defaults() -> None:
    parsed = parse_document(doc())
    assert (parsed.multi_label, parsed.threshold, parsed.fallback) == (False, 0.3, None)


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (doc(labels=[{"name": "a"}, {"name": "a"}]), "labels.1.name", "duplicate label name 'a'"),
        (doc(labels=[{"name": "  "}]), "labels.0.name", "at least 1 character"),
        (doc(labels=[]), "labels", "at least 1 item"),
        (doc(threshold=1.5), "threshold", "less than or equal to 1"),
        (doc(labels=[{"name": "a", "threshold": -2}]), "labels.0.threshold", "greater than or equal to -1"),
        (doc(labels=[{"name": "a", "description": "x" * 2001}]), "labels.0.description", "at most 2000"),
        (doc(labels=[{"name": "a", "exmaples": ["typo"]}]), "labels.0.exmaples", "Extra inputs"),
        (doc(name="has space"), "name", "should match pattern"),
        ({"labels": [{"name": "a"}]}, "name", "Field required"),
    ],
)
def test_invalid_documents_name_the_field(data: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(InvalidDocumentError) as info:
        parse_document(data)
    assert any(e["field"] == field and fragment in e["message"] for e in info.value.errors), info.value.errors


def test_label_count_limit_is_configurable() -> None:
    with pytest.raises(InvalidDocumentError, match="3 labels; at most 2"):
        parse_document(doc(labels=[{"name": "a"}, {"name": "b"}, {"name": "c"}]), max_labels=2)


def test_bad_yaml_is_a_clear_error() -> None:
    with pytest.raises(InvalidDocumentError, match="not valid YAML"):
        load_yaml("name: [unclosed")


def test_equal_documents_hash_equal_and_edits_do_not() -> None:
    a = parse_document(doc())
    assert a.content_hash() == parse_document(doc()).content_hash()
    assert a.content_hash() != parse_document(doc(threshold=0.4)).content_hash()


def test_optional_fields_left_unset_keep_the_stored_hash() -> None:
    plain = parse_document(doc())
    assert "margin" not in plain.to_canonical_json() and "refine_from_traffic" not in plain.to_canonical_json()
    assert parse_document(doc(margin=0.05)).content_hash() != plain.content_hash()
    assert parse_document(doc(refine_from_traffic=False)).refine_from_traffic is False


def test_margin_must_be_a_small_non_negative_number() -> None:
    with pytest.raises(InvalidDocumentError) as info:
        parse_document(doc(margin=-0.1))
    assert info.value.errors[0]["field"] == "margin"


def test_calibration_is_optional_and_its_slopes_cannot_be_negative() -> None:
    plain = parse_document(doc())
    assert plain.calibration is None and "calibration" not in plain.to_canonical_json()
    cal = parse_document(doc(calibration={"score": 4.0, "margin": 10.0, "bias": -2.0}))
    assert cal.calibration is not None and cal.calibration.margin == 10.0
    assert cal.content_hash() != plain.content_hash()
    with pytest.raises(InvalidDocumentError) as info:
        parse_document(doc(calibration={"score": -1.0}))
    assert info.value.errors[0]["field"] == "calibration.score"


def test_a_document_over_its_total_texts_or_characters_is_refused_by_field() -> None:
    """Each label within its own limits, the whole too big to embed: InvalidDocumentError naming labels."""
    from labelwise.labelset import parse_document

    many = {
        "name": "big",
        "labels": [{"name": f"l{i}", "examples": [f"e{i} {j}" for j in range(100)]} for i in range(50)],
    }
    with pytest.raises(InvalidDocumentError, match="5050 texts to embed") as e:
        parse_document(many)
    assert e.value.errors[0]["field"] == "labels"
    long = {
        "name": "long",
        "labels": [{"name": f"l{i}", "examples": ["x" * 1_990 + str(j) for j in range(100)]} for i in range(3)],
    }
    with pytest.raises(InvalidDocumentError, match="characters in names, descriptions and examples"):
        parse_document(long)
    assert parse_document(many, max_texts=6_000).name == "big"
