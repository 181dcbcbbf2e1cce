"""Long texts cut into overlapping model windows on sentence boundaries, within a token budget.

A text that fits the model's sequence length (``whole_tokens``, 256 for all-MiniLM-L6-v2, minus the two
special tokens) is read as one window: the text itself, so messages are encoded exactly as before. A
longer one is tokenized once (the model's own ``tokenizer.json``, character offsets), cut into sentences
(``.``/``!``/``?`` followed by space, or a line break), and the sentences are packed greedily into
windows of at most ``window_tokens``: 32 by default, about one sentence, far below the model's length,
so one relevant sentence is not drowned by the rest of a long window (bench/long_documents.py). Each next
window starts on the last sentences of the one before that fit in ``overlap_tokens`` (none when the last
sentence is longer: the edge then falls between two sentences). A sentence longer than a window is cut
at token boundaries into pieces that overlap by ``overlap_tokens``, so a phrase cut by one edge is read
whole by the next piece. Tokens past ``budget_tokens`` are not read and the reading says ``truncated``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = 2  # [CLS] and [SEP] the encoder adds to every window
_SENTENCE_END = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])\s+|\s*\n\s*")


@dataclass(frozen=True)
class Reading:
    """How one text is read: its windows as character spans ``(start, end)`` and whether the budget cut it."""

    spans: tuple[tuple[int, int], ...]
    truncated: bool


@dataclass(frozen=True)
class Windower:
    """Splits texts into windows for one model's tokenizer.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` without truncation or padding.
        window_tokens: tokens per window of a long text (special tokens included).
        whole_tokens: the model's sequence length; a text this short is one window, itself.
        overlap_tokens: most tokens a window repeats from the one before (whole sentences only).
        budget_tokens: most tokens of a text that are read; the rest is ignored (``truncated``).
    """

    tokenizer: Any
    window_tokens: int = 32
    overlap_tokens: int = 8
    budget_tokens: int = 8192
    whole_tokens: int = 256

    @property
    def content_tokens(self) -> int:
        return max(self.window_tokens - SPECIAL_TOKENS, 1)

    @property
    def whole_content_tokens(self) -> int:
        return max(self.whole_tokens - SPECIAL_TOKENS, 1)

    def read(self, texts: Sequence[str]) -> list[Reading]:
        """One Reading per text; only texts longer (in characters) than a window are tokenized."""
        out: list[Reading | None] = [None] * len(texts)
        long_rows = []
        for i, text in enumerate(texts):
            if len(text) <= self.whole_content_tokens:  # every token covers at least one character
                out[i] = Reading(((0, len(text)),), False)
            else:
                long_rows.append(i)
        encodings = self.tokenizer.encode_batch([texts[i] for i in long_rows], add_special_tokens=False)
        for i, enc in zip(long_rows, encodings, strict=True):
            out[i] = self._read_one(texts[i], [o for o in enc.offsets if o[1] > o[0]])
        return [r for r in out if r is not None]

    def _read_one(self, text: str, offsets: list[tuple[int, int]]) -> Reading:
        if len(offsets) <= self.whole_content_tokens:
            return Reading(((0, len(text)),), False)
        truncated = len(offsets) > self.budget_tokens
        offsets = offsets[: self.budget_tokens]
        units = _units(text, offsets, limit=self.content_tokens, overlap=self.overlap_tokens)
        return Reading(tuple(_pack(units, limit=self.content_tokens, overlap=self.overlap_tokens)), truncated)


@dataclass(frozen=True)
class _Unit:
    start: int  # characters
    end: int
    tokens: int


def _units(text: str, offsets: list[tuple[int, int]], *, limit: int, overlap: int) -> list[_Unit]:
    """Sentences over the read tokens, each with its token count; longer than ``limit`` ones cut in pieces
    of ``limit`` tokens that overlap by ``overlap``."""
    starts = [s for s, _ in offsets]
    read_end = offsets[-1][1]
    units: list[_Unit] = []
    stride = max(limit - overlap, 1)
    for s_start, s_end in sentence_spans(text[:read_end]):
        first = bisect.bisect_left(starts, s_start)
        last = bisect.bisect_left(starts, s_end)  # tokens first..last-1 start inside the sentence
        for piece in range(first, last, stride):
            stop = min(piece + limit, last)
            units.append(_Unit(max(offsets[piece][0], s_start), min(offsets[stop - 1][1], s_end), stop - piece))
            if stop == last:
                break
    return [u for u in units if u.tokens > 0]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of ``text``, surrounding whitespace left out."""
    spans = []
    position = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((position, match.start()))
        position = match.end()
    spans.append((position, len(text)))
    return [(s, e) for s, e in spans if e > s]


def _pack(units: list[_Unit], *, limit: int, overlap: int) -> list[tuple[int, int]]:
    """Windows of consecutive units (at most ``limit`` tokens), each starting on up to ``overlap`` tokens of
    the previous window's last units; always moving forward by at least one unit."""
    spans = []
    first = 0
    while first < len(units):
        end, tokens = first, 0
        while end < len(units) and tokens + units[end].tokens <= limit:
            tokens += units[end].tokens
            end += 1
        end = max(end, first + 1)
        spans.append((units[first].start, units[end - 1].end))
        if end == len(units):
            break
        nxt, repeated = end, 0
        while nxt - 1 > first and repeated + units[nxt - 1].tokens <= overlap:
            nxt -= 1
            repeated += units[nxt].tokens
        first = nxt
    return spans


DEFAULT_WINDOW_TOKENS = 32


def windower_for(model_dir: Path, *, budget_tokens: int, window_tokens: int = DEFAULT_WINDOW_TOKENS) -> Windower | None:
    """A Windower on the model's ``tokenizer.json`` (None when the model has none: texts are then read
    as the encoder truncates them). ``window_tokens`` is capped at the model's ``max_seq_length``;
    windows overlap by up to a quarter of it."""
    path = Path(model_dir) / "tokenizer.json"
    if not path.exists():
        return None
    from tokenizers import Tokenizer

    from labelwise.classify.onnx import max_seq_length

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    whole = max_seq_length(Path(model_dir))
    window = min(window_tokens, whole)
    return Windower(
        tokenizer, window_tokens=window, overlap_tokens=window // 4, budget_tokens=budget_tokens, whole_tokens=whole
    )
