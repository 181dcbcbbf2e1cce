"""The label-set editor's form state (a *draft*) and its way to and from the label-set document.

A draft is a JSON object shaped like the document but holding what the admin typed: numbers as the
text in their inputs, examples as a list of lines. It may be invalid while it is being typed;
``to_document`` validates it exactly as the API does, and ``field_errors`` files each problem under
the input it names (``labels.1.name``). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from labelwise.errors import InvalidDocumentError
from labelwise.labelset import LabelSetDocument, parse_document

_LABEL_KEY = re.compile(r"^labels\.(\d{1,4})\.(name|description|examples|threshold)$")
TRAFFIC_CHOICES = {"": None, "true": True, "false": False}


def blank_label() -> dict[str, Any]:
    return {"name": "", "description": "", "examples": [], "threshold": ""}


def new_draft(name: str) -> dict[str, Any]:
    """The editor's start for a set that does not exist yet: one empty label."""
    return {
        "name": name,
        "multi_label": False,
        "threshold": "0.3",
        "fallback": "",
        "margin": "",
        "refine_from_traffic": "",
        "calibration": None,
        "labels": [blank_label()],
    }


def text_of(value: Any) -> str:
    """The value as text; NUL characters dropped (no database stores them in text)."""
    return "" if value is None else str(value).replace("\x00", "")


def from_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The draft of a stored document (what the editor shows before any edit)."""
    traffic = doc.get("refine_from_traffic")
    return {
        "name": doc["name"],
        "multi_label": bool(doc.get("multi_label")),
        "threshold": text_of(doc.get("threshold", 0.3)),
        "fallback": text_of(doc.get("fallback")),
        "margin": text_of(doc.get("margin")),
        "refine_from_traffic": "" if traffic is None else ("true" if traffic else "false"),
        "calibration": doc.get("calibration"),
        "labels": [
            {
                "name": label["name"],
                "description": label.get("description", ""),
                "examples": list(label.get("examples", [])),
                "threshold": text_of(label.get("threshold")),
            }
            for label in doc["labels"]
        ],
    }


def from_form(form: Mapping[str, Any], *, name: str, calibration: Any = None) -> dict[str, Any]:
    """The draft a submitted editor form holds. Labels keep the order of their indexes; a label's
    examples are the non-empty lines of its text area. The calibration is not editable: it is kept."""
    labels: dict[int, dict[str, Any]] = {}
    for key, value in form.items():
        match = _LABEL_KEY.match(key)
        if match and isinstance(value, str):
            label = labels.setdefault(int(match[1]), blank_label())
            field = match[2]
            value = text_of(value)
            label[field] = _lines(value) if field == "examples" else value.strip()
    traffic = text_of(form.get("refine_from_traffic"))
    return {
        "name": name,
        "multi_label": text_of(form.get("multi_label")) in ("on", "true", "1"),
        "threshold": text_of(form.get("threshold")).strip(),
        "fallback": text_of(form.get("fallback")).strip(),
        "margin": text_of(form.get("margin")).strip(),
        "refine_from_traffic": traffic if traffic in TRAFFIC_CHOICES else "",
        "calibration": calibration,
        "labels": [labels[i] for i in sorted(labels)],
    }


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def apply_action(draft: dict[str, Any], action: str) -> tuple[dict[str, Any], str | None]:
    """The draft after an editor button (``add_label``, ``remove:N``, ``up:N``, ``down:N``) and the id of
    the input to focus next (None: keep). Unknown actions and indexes change nothing."""
    labels = list(draft["labels"])
    verb, _, arg = action.partition(":")
    i = int(arg) if arg.isdigit() else -1
    focus = None
    if verb == "add_label":
        labels.append(blank_label())
        focus = f"labels-{len(labels) - 1}-name"
    elif verb == "remove" and 0 <= i < len(labels) and len(labels) > 1:
        del labels[i]
        focus = f"labels-{min(i, len(labels) - 1)}-name"
    elif verb in ("up", "down") and 0 <= i < len(labels):
        j = i - 1 if verb == "up" else i + 1
        if 0 <= j < len(labels):
            labels[i], labels[j] = labels[j], labels[i]
            focus = f"{verb}-{j}"
    return {**draft, "labels": labels}, focus


def _number(text: str) -> Any:
    """A float when the text is one; else the text itself, so validation names the field."""
    try:
        return float(text)
    except ValueError:
        return text


def to_data(draft: Mapping[str, Any]) -> dict[str, Any]:
    """The document data of a draft (not validated); empty optional inputs are left unset."""
    data: dict[str, Any] = {
        "name": draft["name"],
        "multi_label": bool(draft.get("multi_label")),
        "fallback": draft.get("fallback") or None,
        "labels": [
            {
                "name": label["name"],
                "description": label.get("description", ""),
                "examples": list(label.get("examples", [])),
                "threshold": _number(label["threshold"]) if label.get("threshold") else None,
            }
            for label in draft["labels"]
        ],
    }
    if draft.get("threshold"):
        data["threshold"] = _number(draft["threshold"])
    if draft.get("margin"):
        data["margin"] = _number(draft["margin"])
    traffic = TRAFFIC_CHOICES.get(draft.get("refine_from_traffic") or "")
    if traffic is not None:
        data["refine_from_traffic"] = traffic
    if draft.get("calibration") is not None:
        data["calibration"] = draft["calibration"]
    return data


def to_document(draft: Mapping[str, Any], *, max_labels: int) -> LabelSetDocument:
    """Validate a draft as the API validates a document; raises InvalidDocumentError by field."""
    return parse_document(to_data(draft), max_labels=max_labels)


def field_errors(error: InvalidDocumentError) -> dict[str, list[str]]:
    """Each problem filed under the editor input it belongs to: ``labels.0.examples.2`` goes to the
    examples area of label 0 as "example 3: ..."; problems of the whole document under ``form``."""
    out: dict[str, list[str]] = {}
    for item in error.errors or [{"field": "form", "message": error.message}]:
        parts = str(item["field"]).split(".")
        slot, message = str(item["field"]), str(item["message"])
        if len(parts) == 4 and parts[0] == "labels" and parts[2] == "examples" and parts[3].isdigit():
            slot, message = ".".join(parts[:3]), f"example {int(parts[3]) + 1}: {message}"
        elif len(parts) > 3 and parts[0] == "labels":
            slot = ".".join(parts[:3])
        elif parts[0] not in ("labels", "threshold", "fallback", "margin", "multi_label", "refine_from_traffic"):
            slot = "form"
        out.setdefault(slot, []).append(message)
    return out


def slot_id(slot: str) -> str:
    """The HTML id of the element that shows a slot's errors."""
    return "err-" + slot.replace(".", "-")


def with_example(draft: dict[str, Any], label: str, text: str) -> dict[str, Any]:
    """The draft with ``text`` (whitespace collapsed) as a new example of ``label``; unchanged when the
    label is not in the draft or already has it."""
    example = " ".join(text.split())
    labels = []
    for item in draft["labels"]:
        if item["name"] == label and example not in item["examples"]:
            item = {**item, "examples": [*item["examples"], example]}
        labels.append(item)
    return {**draft, "labels": labels}
