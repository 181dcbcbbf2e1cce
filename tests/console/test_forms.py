"""The editor's draft: form in, document out, errors at the input they name."""

from __future__ import annotations

import pytest

from labelwise.console import forms
from labelwise.errors import InvalidDocumentError

DOC = {
    "name": "support",
    "multi_label": False,
    "threshold": 0.25,
    "fallback": "needs-triage",
    "margin": None,
    "refine_from_traffic": False,
    "calibration": {"score": 8.0, "margin": 2.0, "bias": -4.0},
    "labels": [
        {"name": "billing", "description": "Invoices.", "examples": ["charged twice"], "threshold": 0.4},
        {"name": "bug", "description": "", "examples": [], "threshold": None},
    ],
}


def form_of(draft: dict) -> dict[str, str]:  # type: ignore[type-arg]
    out = {k: str(draft[k]) for k in ("threshold", "fallback", "margin", "refine_from_traffic")}
    for i, label in enumerate(draft["labels"]):
        out |= {f"labels.{i}.{k}": label[k] for k in ("name", "description", "threshold")}
        out[f"labels.{i}.examples"] = "\n".join(label["examples"])
    return out


def test_a_stored_document_survives_the_form_unchanged() -> None:
    draft = forms.from_document(DOC)
    back = forms.from_form(form_of(draft), name="support", calibration=DOC["calibration"])
    assert back == draft
    doc = forms.to_document(back, max_labels=10)
    assert doc.model_dump(mode="json") == {**DOC, "threshold": 0.25}


def test_examples_are_the_non_empty_lines_and_labels_keep_their_index_order() -> None:
    form = {"labels.1.name": "b", "labels.0.name": "a", "labels.0.examples": "  one \n\n two\r\n", "threshold": "0.3"}
    draft = forms.from_form(form, name="s")
    assert [x["name"] for x in draft["labels"]] == ["a", "b"]
    assert draft["labels"][0]["examples"] == ["one", "two"]


@pytest.mark.parametrize(
    ("action", "names", "focus"),
    [
        ("add_label", ["a", "b", "c", ""], "labels-3-name"),
        ("remove:1", ["a", "c"], "labels-1-name"),
        ("up:2", ["a", "c", "b"], "up-1"),
        ("down:0", ["b", "a", "c"], "down-1"),
        ("up:0", ["a", "b", "c"], None),
        ("remove:9", ["a", "b", "c"], None),
        ("bogus", ["a", "b", "c"], None),
    ],
)
def test_editor_buttons(action: str, names: list[str], focus: str | None) -> None:
    draft = forms.new_draft("s") | {"labels": [forms.blank_label() | {"name": n} for n in "abc"]}
    after, moved_to = forms.apply_action(draft, action)
    assert [x["name"] for x in after["labels"]] == names and moved_to == focus


def test_the_last_label_cannot_be_removed() -> None:
    draft = forms.new_draft("s")
    assert forms.apply_action(draft, "remove:0")[0]["labels"] == draft["labels"]


def test_errors_are_filed_under_the_inputs_the_validation_names() -> None:
    draft = forms.new_draft("s") | {
        "threshold": "high",
        "labels": [
            forms.blank_label() | {"name": "a", "examples": ["ok", "x" * 3000]},
            forms.blank_label() | {"name": "a", "threshold": "2"},
        ],
    }
    with pytest.raises(InvalidDocumentError) as e:
        forms.to_document(draft, max_labels=10)
    errors = forms.field_errors(e.value)
    assert set(errors) == {"threshold", "labels.0.examples", "labels.1.threshold"}
    assert errors["labels.0.examples"][0].startswith("example 2: ")
    with pytest.raises(InvalidDocumentError) as e:
        forms.to_document(
            draft | {"threshold": "0.3", "labels": [draft["labels"][0] | {"examples": []}] * 2}, max_labels=10
        )
    assert forms.field_errors(e.value) == {"labels.1.name": ["duplicate label name 'a'"]}
    assert forms.slot_id("labels.1.name") == "err-labels-1-name"


def test_a_message_becomes_an_example_once() -> None:
    draft = forms.from_document(DOC)
    once = forms.with_example(draft, "bug", "  the app\ncrashes  ")
    assert once["labels"][1]["examples"] == ["the app crashes"]
    assert forms.with_example(once, "bug", "the app crashes") == once
    assert forms.with_example(draft, "nope", "x") == draft


def test_nul_characters_typed_into_the_form_are_dropped() -> None:
    draft = forms.from_form({"labels.0.name": "a\x00b", "labels.0.examples": "x\x00\ny", "fallback": "\x00"}, name="s")
    assert draft["labels"][0]["name"] == "ab" and draft["labels"][0]["examples"] == ["x", "y"]
    assert draft["fallback"] == ""
