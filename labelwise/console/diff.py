"""A readable diff between two label-set documents: what changed on the set, which labels were added,
removed or moved, and per label which fields and examples changed. Pure functions, no I/O."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import yaml

SET_FIELDS = ("threshold", "fallback", "multi_label", "margin", "refine_from_traffic", "calibration")
LABEL_FIELDS = ("description", "threshold")


def _label_map(doc: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {label["name"]: label for label in doc.get("labels", [])}


def diff_documents(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``{"set": [(field, before, after)], "added": [label], "removed": [label], "changed": [...],
    "moved": bool}``; ``changed`` lists ``{"name", "fields": [(field, before, after)],
    "examples_added": [...], "examples_removed": [...]}`` for labels in both."""
    before, after = _label_map(old), _label_map(new)
    changed = []
    for name in (n for n in after if n in before):
        entry = _label_changes(before[name], after[name])
        if entry["fields"] or entry["examples_added"] or entry["examples_removed"]:
            changed.append({"name": name, **entry})
    common_old = [n for n in before if n in after]
    common_new = [n for n in after if n in before]
    return {
        "set": [(f, old.get(f), new.get(f)) for f in SET_FIELDS if old.get(f) != new.get(f)],
        "added": [after[n] for n in after if n not in before],
        "removed": [before[n] for n in before if n not in after],
        "changed": changed,
        "moved": common_old != common_new,
    }


def _label_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    old_examples, new_examples = list(old.get("examples", [])), list(new.get("examples", []))
    return {
        "fields": [(f, old.get(f), new.get(f)) for f in LABEL_FIELDS if (old.get(f) or None) != (new.get(f) or None)],
        "examples_added": [x for x in new_examples if x not in old_examples],
        "examples_removed": [x for x in old_examples if x not in new_examples],
    }


def is_empty(diff: Mapping[str, Any]) -> bool:
    return not (diff["set"] or diff["added"] or diff["removed"] or diff["changed"] or diff["moved"])


def to_yaml(doc: Mapping[str, Any]) -> str:
    """The document as ``labelwise labels apply`` reads it (fields in document order, unset ones left out)."""
    data = {k: v for k, v in doc.items() if v is not None}
    data["labels"] = [{k: v for k, v in label.items() if v is not None} for label in doc.get("labels", [])]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def unified(old: Mapping[str, Any], new: Mapping[str, Any], *, old_name: str, new_name: str) -> list[str]:
    """The YAML texts' unified diff, line by line."""
    return list(
        difflib.unified_diff(
            to_yaml(old).splitlines(), to_yaml(new).splitlines(), fromfile=old_name, tofile=new_name, lineterm=""
        )
    )
