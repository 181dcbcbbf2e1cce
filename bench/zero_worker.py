"""``labelwise worker`` with a zero-cost encoder, for bench/pipeline.py: fixed unit vectors instead of a
model, so what the worker spends is everything but encoding.

    python bench/zero_worker.py worker      # same arguments and settings as `labelwise worker`

Only the single-process worker is patched (LABELWISE_WORKER_PROCESSES=1): the encoder is swapped in
this process before the CLI starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DIM = 384
_rng = np.random.default_rng(0)
_TABLE = _rng.standard_normal((16, DIM)).astype(np.float32)
_TABLE /= np.linalg.norm(_TABLE, axis=1, keepdims=True)


class ZeroEncoder:
    """One of 16 fixed unit vectors per text (by length), at no cost."""

    model_id = "zero-encoder"

    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def load(self) -> None:
        pass

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return _TABLE[[len(t) % 16 for t in texts]]


def main() -> None:
    from labelwise.classify import onnx

    onnx.OnnxEncoder = ZeroEncoder  # type: ignore[misc,assignment]
    from labelwise.cli import main as cli

    sys.argv = ["labelwise", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
