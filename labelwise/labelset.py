"""The label-set document (normative; YAML in the CLI, JSON in the API) and its validation."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from labelwise.errors import InvalidDocumentError
from labelwise.messages import has_nul

MAX_LABELS = 1_000
MAX_DESCRIPTION_CHARS = 2_000
MAX_EXAMPLES = 100
MAX_EXAMPLE_CHARS = 2_000
MAX_TEXTS = 5_000  # names-with-descriptions and examples: what a worker embeds for one version
MAX_CHARS = 500_000  # their characters, all together
OPTIONAL_SET_FIELDS = ("margin", "refine_from_traffic", "calibration")

SetName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
LabelName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Threshold = Annotated[float, Field(ge=-1.0, le=1.0)]
Example = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EXAMPLE_CHARS)]


class Label(BaseModel):
    """One label: a name, and what it means in words and examples."""

    model_config = ConfigDict(extra="forbid")

    name: LabelName
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_DESCRIPTION_CHARS)] = ""
    examples: Annotated[list[Example], Field(max_length=MAX_EXAMPLES)] = []
    threshold: Threshold | None = Field(None, description="Overrides the set's threshold for this label.")


class Calibration(BaseModel):
    """Maps a label's raw score ``s`` to a probability that it is the right label.

    ``p = sigmoid(score * s + margin * (s - best other label's s) + bias)``; both slopes are
    non-negative, so the ranking of labels never changes. ``labelwise labels tune --calibrate`` fits it
    on a labelled sample (Platt scaling on the top score and its lead over the runner-up).
    """

    model_config = ConfigDict(extra="forbid")

    score: Annotated[float, Field(ge=0.0, le=1_000.0)]
    margin: Annotated[float, Field(ge=0.0, le=1_000.0)] = 0.0
    bias: Annotated[float, Field(ge=-1_000.0, le=1_000.0)] = 0.0


class LabelSetDocument(BaseModel):
    """A whole label set, as a tenant admin writes it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "support",
                "multi_label": False,
                "threshold": 0.3,
                "fallback": "needs-triage",
                "labels": [
                    {
                        "name": "billing",
                        "description": "Invoices, charges, refunds and payment methods.",
                        "examples": ["I was charged twice this month"],
                        "threshold": 0.35,
                    }
                ],
            }
        },
    )

    name: SetName
    multi_label: bool = Field(False, description="True: every label whose score clears its threshold is chosen.")
    threshold: Threshold = Field(0.3, description="Below it on every label, the result abstains.")
    fallback: LabelName | None = Field(None, description="Label reported as chosen when abstaining.")
    labels: Annotated[list[Label], Field(min_length=1, max_length=MAX_LABELS)]
    margin: Annotated[float, Field(ge=0.0, le=2.0)] | None = Field(
        None,
        description="Single-label sets: abstain also when the two best scores are closer than this "
        "(e.g. 0.02). Unset: only the threshold decides.",
    )
    refine_from_traffic: bool | None = Field(
        None,
        description="Refine the label vectors from the set's recent unlabeled messages, where the worker "
        "keeps them (names only on Banking77: 0.62 -> 0.72 top-1). Unset means true. Set false when "
        "many messages fall outside every label: refining pulls them into labels and weakens abstention.",
    )

    calibration: Calibration | None = Field(
        None,
        description="Scores become calibrated probabilities (a score of 0.8 is right about 80% of the time on "
        "messages like the tuning sample); thresholds and margin are then probabilities too. Written by "
        "`labelwise labels tune --calibrate`. Unset: raw scores.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if has_nul(data):
            raise ValueError("the document contains a NUL character")
        return data

    def to_canonical_json(self) -> str:
        """Stable JSON text: equal documents give equal text (used to detect no-op edits).

        Optional fields added after the first release are left out while unset, so documents stored
        before them keep their hash.
        """
        data = self.model_dump(mode="json")
        for key in OPTIONAL_SET_FIELDS:
            if data.get(key) is None:
                data.pop(key, None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        return hashlib.sha256(self.to_canonical_json().encode()).hexdigest()


def parse_document(
    data: Any, *, max_labels: int = MAX_LABELS, max_texts: int = MAX_TEXTS, max_chars: int = MAX_CHARS
) -> LabelSetDocument:
    """Validate a decoded document; raises InvalidDocumentError listing every problem by field.

    Besides each field's own limits, the whole document may hold at most ``max_texts`` texts to embed
    (one per label, one per example) and ``max_chars`` characters in them: what one version costs a
    worker to embed is bounded, whoever writes it."""
    try:
        doc = LabelSetDocument.model_validate(data)
    except ValidationError as e:
        errors = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(document)", "message": err["msg"]} for err in e.errors()
        ]
        summary = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        raise InvalidDocumentError(f"invalid label set: {summary}", errors=errors) from e
    problems = [{"field": "labels", "message": f"{len(doc.labels)} labels; at most {max_labels} are allowed"}]
    if len(doc.labels) <= max_labels:
        seen: set[str] = set()
        problems = []
        for i, label in enumerate(doc.labels):
            if label.name in seen:
                problems.append({"field": f"labels.{i}.name", "message": f"duplicate label name {label.name!r}"})
            seen.add(label.name)
    problems += size_problems(doc, max_texts=max_texts, max_chars=max_chars)
    if problems:
        summary = "; ".join(f"{x['field']}: {x['message']}" for x in problems)
        raise InvalidDocumentError(f"invalid label set: {summary}", errors=problems)
    return doc


def size_problems(doc: LabelSetDocument, *, max_texts: int, max_chars: int) -> list[dict[str, str]]:
    """The document's totals over their caps, as field problems (none when within)."""
    texts = sum(1 + len(label.examples) for label in doc.labels)
    chars = sum(len(x.name) + len(x.description) + sum(len(e) for e in x.examples) for x in doc.labels)
    problems = []
    if texts > max_texts:
        message = f"{texts} texts to embed (labels plus examples); at most {max_texts} are allowed"
        problems.append({"field": "labels", "message": message})
    if chars > max_chars:
        message = f"{chars} characters in names, descriptions and examples; at most {max_chars} are allowed"
        problems.append({"field": "labels", "message": message})
    return problems


def document_limits(settings: Any) -> dict[str, int]:
    """parse_document's caps from Settings (``max_labels``, ``max_label_set_texts``, ``max_label_set_chars``)."""
    return {
        "max_labels": settings.max_labels,
        "max_texts": settings.max_label_set_texts,
        "max_chars": settings.max_label_set_chars,
    }


def load_yaml(text: str) -> LabelSetDocument:
    """Parse a YAML label-set document; raises InvalidDocumentError on bad YAML or content."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidDocumentError(f"not valid YAML: {e}") from e
    return parse_document(data)
