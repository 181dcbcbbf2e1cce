"""The task message (normative keyword arguments of ``labelwise.classify``) and its validation."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from labelwise.errors import InvalidInputError

Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class ReplyTo(BaseModel):
    """Where the result goes: an integration of the tenant plus its target (channel, issue, ticket...)."""

    model_config = ConfigDict(extra="allow", strict=True)

    integration: Name


class ClassifyMessage(BaseModel):
    """Keyword arguments of ``labelwise.classify``; JSON types only, no coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tenant: Name
    label_set: Name
    text: str
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    metadata: dict[str, Any] | None = None
    reply_to: ReplyTo | None = Field(None)


def parse_message(kwargs: Any, *, max_text_chars: int, args: tuple[Any, ...] = ()) -> ClassifyMessage:
    """Validate a task's kwargs; raises InvalidInputError naming the first bad field."""
    if args:
        raise InvalidInputError(f"labelwise.classify takes keyword arguments only; got {len(args)} positional")
    if not isinstance(kwargs, dict):
        raise InvalidInputError("the message must be a JSON object of keyword arguments")
    try:
        msg = ClassifyMessage.model_validate(kwargs)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InvalidInputError(f"{field}: {_describe(err)}", field=field) from e
    check_text(msg.text, max_text_chars=max_text_chars)
    if has_nul(kwargs):
        raise InvalidInputError("the message contains a NUL character", field=None)
    return msg


def check_text(text: str, *, max_text_chars: int) -> None:
    if not text.strip():
        raise InvalidInputError("text: must not be empty", field="text")
    if len(text) > max_text_chars:
        raise InvalidInputError(f"text: {len(text):,} characters; the limit is {max_text_chars:,}", field="text")


def _describe(err: dict[str, Any]) -> str:
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "extra_forbidden":
        return (
            "unexpected field (labelwise.classify takes tenant, label_set, text, idempotency_key, metadata, reply_to)"
        )
    return str(err["msg"]).lower()


def has_nul(value: Any) -> bool:
    """Whether any string in a JSON value holds a NUL (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def sanitize(value: Any, *, max_chars: int = 20_000) -> Any:
    """A storable copy of arbitrary JSON: NULs replaced, long strings cut (for failed jobs)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")[:max_chars]
    if isinstance(value, dict):
        return {str(sanitize(k, max_chars=200)): sanitize(v, max_chars=max_chars) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize(v, max_chars=max_chars) for v in value]
    return value
