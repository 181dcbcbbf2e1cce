"""Request and response bodies of the HTTP API, kept apart from the SQL tables."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from labelwise.labelset import Label, Threshold

Text = Annotated[
    str,
    Field(
        description="The message or document to classify. A text longer than the model's window is read in "
        "overlapping windows (on sentence boundaries) up to LABELWISE_TOKEN_BUDGET tokens; longer than "
        "LABELWISE_MAX_TEXT_CHARS characters fails the job.",
        examples=["I was charged twice this month"],
    ),
]
SetName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class ReplyTo(BaseModel):
    model_config = ConfigDict(extra="allow")

    integration: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="Name of one of the tenant's integrations; other keys name the target (channel, thread_ts...)."
    )


class JobIn(BaseModel):
    """A message to classify with one of the tenant's label sets."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"label_set": "support", "text": "I was charged twice", "metadata": {"id": 7}}]
        },
    )

    label_set: SetName = Field(description="Name of the label set.")
    text: Text
    metadata: dict[str, Any] | None = Field(None, description="Any JSON object; stored with the job and returned.")
    reply_to: ReplyTo | None = Field(None, description="Where an integration should deliver the result.")


class LabelScore(BaseModel):
    name: str
    score: float = Field(description="Cosine similarity in [-1, 1].")


class Evidence(BaseModel):
    label: str = Field(description="A chosen label.")
    start: int = Field(
        description="Character offset (in the job's text) where the window that scored highest for it starts."
    )
    end: int = Field(description="Character offset where that window ends (exclusive): text[start:end] is the passage.")
    score: float = Field(description="That window's score for the label.")


class JobOut(BaseModel):
    """A job in the result shape; `labels` and `chosen` are filled once `status` is `done`."""

    job_id: str
    status: str = Field(description="queued, running, done or failed.")
    tenant: str
    label_set: str
    label_set_version: int | None = Field(description="Version of the label set the result used.")
    model: str | None = Field(description="Embedding model the result used.")
    labels: list[LabelScore] = Field(description="Top labels, best first.")
    chosen: list[str] = Field(description="Labels chosen (the fallback label when abstaining).")
    abstained: bool = Field(description="True when no label cleared its threshold.")
    error: str | None = Field(description="Why the job failed.")
    idempotency_key: str | None
    metadata: dict[str, Any] | None
    created_at: dt.datetime | None
    finished_at: dt.datetime | None
    feedback: str | None = Field(None, description="The label a user said is right (POST .../feedback).")
    warnings: list[str] = Field(
        default_factory=list,
        description="What went wrong besides the classification, e.g. a reply_to naming no integration.",
    )
    windows: int | None = Field(
        None, description="How many model windows read the text (1 for a text that fits one); null until done."
    )
    truncated: bool | None = Field(
        None, description="True when the text was longer than the token budget and its end was not read."
    )
    evidence: list[Evidence] = Field(
        default_factory=list,
        description="For each chosen label (not the fallback): the character span of the window that scored "
        "highest for it, so a reply can quote the passage.",
    )


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class LabelSetIn(BaseModel):
    """A label-set document (the same as the YAML the CLI applies); `name` may be left out."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "multi_label": False,
                    "threshold": 0.3,
                    "fallback": "needs-triage",
                    "labels": [
                        {
                            "name": "billing",
                            "description": "Invoices, charges and payment methods.",
                            "examples": ["I was charged twice this month"],
                        },
                        {"name": "bug-report", "description": "Something is broken or shows an error."},
                    ],
                }
            ]
        },
    )

    name: SetName | None = Field(None, description="Must equal the name in the path when given.")
    multi_label: bool = False
    threshold: Threshold = 0.3
    fallback: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = None
    labels: Annotated[list[Label], Field(min_length=1)]
    margin: Annotated[float, Field(ge=0.0, le=2.0)] | None = Field(
        None, description="Single-label sets: abstain also when the two best scores are closer than this."
    )
    refine_from_traffic: bool | None = Field(
        None, description="Refine label vectors from the set's recent messages (unset: true)."
    )


class VersionOut(BaseModel):
    name: str
    version: int
    current: bool | None = Field(description="Whether new messages use this version.")
    created_at: dt.datetime
    document: dict[str, Any]


class LabelSetSummary(BaseModel):
    name: str
    current_version: int | None


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1, description="The version to make current again.")


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable, machine-readable.", examples=["not_found"])
    message: str = Field(description="For humans.")
    fields: list[FieldError] | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: str
    checks: dict[str, str] | None = None


class IntegrationIn(BaseModel):
    """An integration document; `name` comes from the path. See the README for each kind's settings."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "webhook",
                    "settings": {"url": "https://example.com/labelwise", "subscribe": ["support"]},
                    "secrets": {"signing_secrets": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
                }
            ]
        },
    )

    kind: Literal["webhook", "slack", "jira", "zendesk", "github", "confluence"]
    label_set: SetName | None = Field(None, description="Label set that events coming in from the platform use.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Kind-specific settings.")
    secrets: dict[str, Any] | None = Field(
        None, description="Kind-specific secrets, merged into the stored ones (null removes one); never returned."
    )


class IntegrationOut(BaseModel):
    name: str
    kind: str
    id: str = Field(description="Public id, part of the inbound hook URL.")
    label_set: str | None
    settings: dict[str, Any]
    secrets_set: list[str] | None = Field(description="Names of the secrets stored (their values are never shown).")
    hook_path: str | None = Field(description="Where the platform sends its events (Slack, Jira, Zendesk).")
    updated_at: dt.datetime


class HookAnswer(BaseModel):
    model_config = ConfigDict(extra="allow")


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": "refund"}]})

    label: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="The right label; it must be in the label set's current version."
    )
    text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] | None = Field(
        None,
        description="The message's text again, for a job that no longer keeps it (past the tenant's retention, "
        "or privacy mode); it becomes the example. Without it such a job answers 409.",
    )


class FeedbackOut(BaseModel):
    job_id: str
    label: str
    label_set: str
    label_set_version: int = Field(description="The version that now has the job's text as an example.")
    new_version: bool = Field(description="False when the same correction was already there.")


class TenantDeleted(BaseModel):
    """What a tenant's deletion removed."""

    tenant: str
    deleted: dict[str, int] = Field(description="Rows deleted, per table.")


class TenantDataIn(BaseModel):
    """A tenant's data settings; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"retention_days": 7, "privacy": True}]})

    retention_days: int | None = Field(
        None,
        ge=1,
        le=36_500,
        description="Days a job keeps its text and metadata; null: the installation's LABELWISE_RETENTION_DAYS.",
    )
    privacy: bool | None = Field(
        None, description="True: the text of new messages is never written to the database (privacy mode)."
    )


class TenantDataOut(BaseModel):
    tenant: str
    retention_days: int | None = Field(description="The tenant's own retention; null: the default.")
    effective_retention_days: int = Field(description="The retention that applies.")
    privacy: bool = Field(description="Privacy mode: message texts are not stored.")
    purged_before: dt.datetime | None = Field(description="Every finished job created before it has no text.")
