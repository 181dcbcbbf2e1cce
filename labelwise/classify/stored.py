"""An Encoder wrapper that reuses label-text embeddings stored in SQL and stores the new ones."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.base import Encoder
from labelwise.models import embeddings

# Texts per model call: each chunk's vectors are stored as soon as it is done (a build cut short keeps
# them), and a stopping worker waits for one chunk, not for a whole set of thousands of texts.
CHUNK_TEXTS = 256


class StoredEncoder:
    """Encodes only texts whose vectors are not stored yet (for label texts, not for messages)."""

    def __init__(self, inner: Encoder, sessions: sessionmaker[Session]) -> None:
        self._inner = inner
        self._sessions = sessions
        self.encoded = 0  # texts this wrapper had to encode (the rest came from SQL)

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        with self._sessions() as session:
            stored = embeddings.get_many(session, model_id=self.model_id, hashes=sorted(set(hashes)))
        missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in stored}.items())
        for start in range(0, len(missing), CHUNK_TEXTS):
            chunk = missing[start : start + CHUNK_TEXTS]
            fresh = self._inner.encode([t for _, t in chunk])
            self.encoded += len(chunk)
            new = {h: np.asarray(v, dtype="<f4").tobytes() for (h, _), v in zip(chunk, fresh, strict=True)}
            with self._sessions.begin() as session:
                embeddings.put_many(session, model_id=self.model_id, vectors=new)
            stored = {**stored, **new}
        return np.stack([np.frombuffer(stored[h], dtype="<f4") for h in hashes])
