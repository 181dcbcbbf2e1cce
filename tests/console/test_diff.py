"""The readable diff between two label-set versions."""

from __future__ import annotations

from labelwise.console import diff

OLD = {
    "name": "s",
    "threshold": 0.3,
    "labels": [
        {"name": "a", "description": "A.", "examples": ["x", "y"]},
        {"name": "b", "description": "B."},
        {"name": "c"},
    ],
}
NEW = {
    "name": "s",
    "threshold": 0.25,
    "fallback": "none",
    "labels": [
        {"name": "b", "description": "B."},
        {"name": "a", "description": "All about A.", "examples": ["y", "z"], "threshold": 0.5},
        {"name": "d", "examples": ["w"]},
    ],
}


def test_diff_names_every_change() -> None:
    d = diff.diff_documents(OLD, NEW)
    assert d["set"] == [("threshold", 0.3, 0.25), ("fallback", None, "none")]
    assert [x["name"] for x in d["added"]] == ["d"] and [x["name"] for x in d["removed"]] == ["c"]
    assert d["changed"] == [
        {
            "name": "a",
            "fields": [("description", "A.", "All about A."), ("threshold", None, 0.5)],
            "examples_added": ["z"],
            "examples_removed": ["x"],
        }
    ]
    assert d["moved"] is True and not diff.is_empty(d)


def test_same_document_has_no_changes_and_yaml_diff_is_empty() -> None:
    assert diff.is_empty(diff.diff_documents(OLD, OLD))
    assert diff.unified(OLD, OLD, old_name="v1", new_name="v1") == []
    lines = diff.unified(OLD, NEW, old_name="version 1", new_name="version 2")
    assert lines[:2] == ["--- version 1", "+++ version 2"] and "+threshold: 0.25" in lines


def test_yaml_leaves_unset_fields_out() -> None:
    text = diff.to_yaml({"name": "s", "fallback": None, "labels": [{"name": "a", "threshold": None}]})
    assert text == "name: s\nlabels:\n- name: a\n"
