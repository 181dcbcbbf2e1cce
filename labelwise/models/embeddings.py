"""Stored embeddings of label texts (not tenant data: a text's vector depends only on text and model)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from labelwise.models.tables import TextEmbedding


def get_many(session: Session, *, model_id: str, hashes: list[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for start in range(0, len(hashes), 500):  # keep IN lists short
        chunk = hashes[start : start + 500]
        rows = session.execute(
            select(TextEmbedding.text_hash, TextEmbedding.vector).where(
                TextEmbedding.model_id == model_id, TextEmbedding.text_hash.in_(chunk)
            )
        )
        found.update({h: v for h, v in rows})
    return found


def put_many(session: Session, *, model_id: str, vectors: dict[str, bytes]) -> None:
    """Store vectors; one another worker stored meanwhile is kept (same text, same model, same vector)."""
    for text_hash, vector in vectors.items():
        try:
            with session.begin_nested():
                session.add(TextEmbedding(model_id=model_id, text_hash=text_hash, vector=vector))
        except IntegrityError:
            pass
