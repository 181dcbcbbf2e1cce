"""Quoting a result's evidence in platform replies: the passage of a long text each chosen label came from."""

from __future__ import annotations

from typing import Any

MAX_QUOTE_CHARS = 300


def evidence_quotes(result: dict[str, Any], text: str, *, max_chars: int = MAX_QUOTE_CHARS) -> list[str]:
    """``label: "passage"`` per evidence span of a text read in more than one window (a short message is
    its own evidence, so nothing is quoted); whitespace collapsed, cut at ``max_chars`` with an ellipsis."""
    if (result.get("windows") or 1) <= 1 or not text:
        return []
    quotes = []
    for ev in result.get("evidence") or []:
        passage = " ".join(text[int(ev["start"]) : int(ev["end"])].split())
        if len(passage) > max_chars:
            passage = passage[: max_chars - 1].rstrip() + "\u2026"
        if passage:
            quotes.append(f'{ev["label"]}: "{passage}"')
    return quotes
