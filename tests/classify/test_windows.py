"""Cutting long texts into overlapping sentence windows with the real model's tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.classify.sentence import resolve_model_path
from labelwise.classify.windows import Windower, sentence_spans, windower_for
from labelwise.settings import DEFAULT_MODEL

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank today."


@pytest.fixture(scope="module")
def windower() -> Windower:
    made = windower_for(Path(resolve_model_path(DEFAULT_MODEL)), budget_tokens=8192)
    assert made is not None
    return made


def test_windows_of_32_tokens_within_the_models_256(windower: Windower) -> None:
    assert (windower.window_tokens, windower.overlap_tokens, windower.whole_tokens) == (32, 8, 256)


def test_a_text_that_fits_the_model_is_one_window_of_itself(windower: Windower) -> None:
    """Messages up to the model's 256 tokens are read exactly as before: one window, the whole text."""
    text = " ".join([SENTENCE] * 14)  # about 200 tokens
    [reading] = windower.read([text])
    assert len(windower.tokenizer.encode(text).ids) > 150
    assert reading.spans == ((0, len(text)),) and reading.truncated is False


def test_long_text_windows_cover_it_on_sentence_boundaries(windower: Windower) -> None:
    text = " ".join(f"Item {i}: {SENTENCE}" if i % 3 else "Short one." for i in range(120))
    [reading] = windower.read([text])
    spans = reading.spans
    assert len(spans) > 20 and not reading.truncated
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    sentences = sentence_spans(text)
    starts, ends = {s for s, _ in sentences}, {e for _, e in sentences}
    assert all(s in starts and e in ends for s, e in spans), "windows start and end on sentence boundaries"
    assert all(any(ws <= s and e <= we for ws, we in spans) for s, e in sentences), "every sentence read whole"
    assert any(s2 < e1 for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False)), "short sentences overlap"
    assert all(s2 > s1 for (s1, _), (s2, _) in zip(spans, spans[1:], strict=False))
    tokens = [len(windower.tokenizer.encode(text[s:e]).ids) for s, e in spans]  # with [CLS] and [SEP]
    assert max(tokens) <= windower.window_tokens


def test_a_sentence_longer_than_a_window_is_cut_at_token_boundaries(windower: Windower) -> None:
    text = " ".join(["word"] * 1000)  # one "sentence" of 1,000 tokens
    [reading] = windower.read([text])
    assert len(reading.spans) >= 20 and reading.spans[-1][1] == len(text)
    assert all(s2 < e1 for (_, e1), (s2, _) in zip(reading.spans, reading.spans[1:], strict=False)), "pieces overlap"
    assert all(len(windower.tokenizer.encode(text[s:e]).ids) <= 32 for s, e in reading.spans)


def test_the_token_budget_cuts_the_text_and_says_so() -> None:
    small = windower_for(Path(resolve_model_path(DEFAULT_MODEL)), budget_tokens=300)
    assert small is not None
    text = " ".join([SENTENCE] * 100)  # about 1,500 tokens
    [reading] = small.read([text])
    assert reading.truncated is True
    assert reading.spans[-1][1] < len(text) // 3
