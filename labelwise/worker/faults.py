"""Test-only fault points in the worker (LABELWISE_FAULT_INJECTION), for the tests and bench/chaos.py:
nothing here runs unless set.

``worker-exit-on-text=MARKER``: the worker process exits at once (as a SIGKILL or the kernel's OOM killer
would end it) when it is about to encode a text containing MARKER: a message that kills its worker."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from labelwise.settings import Settings

EXIT_ON_TEXT = "worker-exit-on-text"


class ExitOnText:
    """An Encoder that ends the process instead of encoding a text with the marker in it."""

    def __init__(self, inner: Any, marker: str) -> None:
        self.inner, self.marker = inner, marker

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, texts: list[str]) -> np.ndarray:
        if any(self.marker in t for t in texts):
            os._exit(137)
        return self.inner.encode(texts)


def wrap_encoder(settings: Settings, encoder: Any) -> Any:
    spec = settings.fault_injection or ""
    if not spec.startswith(EXIT_ON_TEXT + "="):
        return encoder
    return ExitOnText(encoder, spec.split("=", 1)[1])
