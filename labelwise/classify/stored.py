"""An Encoder wrapper that reuses label-text embeddings stored in SQL and stores the new ones."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from labelwise.classify.base import Encoder
from labelwise.models import embeddings


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
        if missing:
            fresh = self._inner.encode([t for _, t in missing])
            self.encoded += len(missing)
            new = {h: np.asarray(v, dtype="<f4").tobytes() for (h, _), v in zip(missing, fresh, strict=True)}
            with self._sessions.begin() as session:
                embeddings.put_many(session, model_id=self.model_id, vectors=new)
            stored = {**stored, **new}
        return np.stack([np.frombuffer(stored[h], dtype="<f4") for h in hashes])
