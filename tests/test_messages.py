"""Validation of the labelwise.classify keyword arguments."""

from __future__ import annotations

import pytest

from labelwise.errors import InvalidInputError
from labelwise.messages import parse_message, sanitize


def test_a_full_message_parses() -> None:
    msg = parse_message(
        {
            "tenant": "acme",
            "label_set": "support",
            "text": "I was charged twice",
            "idempotency_key": "k",
            "metadata": {"any": ["json", 1]},
            "reply_to": {"integration": "slack-main", "channel": "C0123", "thread_ts": "1700000000.000100"},
        },
        max_text_chars=100,
    )
    assert msg.reply_to is not None and msg.reply_to.model_dump()["channel"] == "C0123"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"tenant": "a", "label_set": "s", "text": "x" * 11}, "11 characters; the limit is 10"),
        (
            {"tenant": "a", "label_set": "s", "text": "1", "idempotency_key": 5},
            "idempotency_key: input should be a valid string",
        ),
        (
            {"tenant": "a", "label_set": "s", "text": "1", "reply_to": {"channel": "C1"}},
            "reply_to.integration: required",
        ),
        ({"tenant": "", "label_set": "s", "text": "1"}, "tenant: string should have at least 1 character"),
        ("not a dict", "must be a JSON object"),
    ],
)
def test_bad_messages_raise_with_the_field(kwargs: object, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        parse_message(kwargs, max_text_chars=10)


def test_sanitize_keeps_json_storable() -> None:
    assert sanitize({"a\x00": ["x\x00", 1, None]}) == {"a\ufffd": ["x\ufffd", 1, None]}
    assert sanitize("y" * 50, max_chars=5) == "yyyyy"
