"""The task message (normative keyword arguments of ``labelwise.classify``) and its validation."""

from __future__ import annotations

import json
import math
import re
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


MAX_METADATA_BYTES = 65_536
_UNSTORABLE_CHARS = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 32  # nesting of metadata and reply_to; deeper JSON is refused, not walked


def parse_message(
    kwargs: Any, *, max_text_chars: int, args: tuple[Any, ...] = (), max_metadata_bytes: int = MAX_METADATA_BYTES
) -> ClassifyMessage:
    """Validate a task's kwargs; raises InvalidInputError naming the first bad field.

    Besides types, fields and sizes, every string must be storable (no NUL, no unpaired surrogate) and
    every number finite: what passes here can be written to SQLite and PostgreSQL."""
    if args:
        raise InvalidInputError(f"labelwise.classify takes keyword arguments only; got {len(args)} positional")
    if not isinstance(kwargs, dict):
        raise InvalidInputError("the message must be a JSON object of keyword arguments")
    problem = unstorable(kwargs)
    if problem is not None:
        raise InvalidInputError(f"{problem[0]}: {problem[1]}", field=problem[0])
    try:
        msg = ClassifyMessage.model_validate(kwargs)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InvalidInputError(f"{field}: {_describe(err)}", field=field) from e
    check_text(msg.text, max_text_chars=max_text_chars)
    if msg.metadata is not None:
        size = len(json.dumps(msg.metadata, separators=(",", ":")).encode())
        if size > max_metadata_bytes:
            raise InvalidInputError(
                f"metadata: {size:,} bytes of JSON; the limit is {max_metadata_bytes:,}", field="metadata"
            )
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


def unstorable(value: Any, *, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """``(field path, why)`` for the first value no database could store, or None.

    Catches a NUL character (PostgreSQL refuses it), an unpaired surrogate (not valid Unicode: no
    UTF-8 encoding exists), a non-finite number (JSON has no Infinity or NaN; Python reads ``1e999``
    as infinity) and nesting deeper than ``max_depth``. Iterative, so hostile depth cannot recurse."""
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        path, item, depth = stack.pop()
        where = path or "(message)"
        if isinstance(item, str):
            if _UNSTORABLE_CHARS.search(item) is None:  # the common case, in one pass
                continue
            if "\x00" in item:
                return where, "contains a NUL character"
            return where, "contains an unpaired surrogate (e.g. \\ud800), which is not valid Unicode"
        elif isinstance(item, float) and not math.isfinite(item):
            return where, f"{item} is not a finite number"
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                return where, f"nested deeper than {max_depth} levels"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str) and _UNSTORABLE_CHARS.search(key) is not None:
                    return where, "a key contains a NUL character or an unpaired surrogate"
                stack.append((f"{path}.{key}" if path else str(key), child, depth + 1))
    return None


def has_nul(value: Any) -> bool:
    """Whether any string in a JSON value holds a NUL (PostgreSQL cannot store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def sanitize(value: Any, *, max_chars: int = 20_000, depth: int = 0) -> Any:
    """A storable copy of arbitrary JSON (for failed jobs): NULs and unpaired surrogates replaced by
    U+FFFD, long strings cut, non-finite numbers and anything nested deeper than MAX_DEPTH as text."""
    if isinstance(value, str):
        return _UNSTORABLE_CHARS.sub("\ufffd", value)[:max_chars]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return "(nested too deep)"
    if isinstance(value, dict):
        return {
            str(sanitize(k, max_chars=200, depth=depth + 1)): sanitize(v, max_chars=max_chars, depth=depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [sanitize(v, max_chars=max_chars, depth=depth + 1) for v in value]
    return value
