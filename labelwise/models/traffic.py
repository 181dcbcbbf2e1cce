"""Recent message vectors per label set (no text, no tenant data beyond the set they belong to)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from labelwise.models.tables import LabelSet, TrafficVector


def append(session: Session, *, label_set_id: int, model_id: str, vectors: list[bytes]) -> int:
    """Store vectors and count them as seen; returns the set's new count of messages seen."""
    if session.get_bind().dialect.name == "postgresql":  # one binary array: no per-row escaping
        session.connection().exec_driver_sql(
            "INSERT INTO traffic_vectors (label_set_id, model_id, vector) "
            "SELECT %(label_set_id)s, %(model_id)s, unnest(%(vectors)b::bytea[])",
            {"label_set_id": label_set_id, "model_id": model_id, "vectors": vectors},
        )
    else:
        rows = [{"label_set_id": label_set_id, "model_id": model_id, "vector": v} for v in vectors]
        session.execute(insert(TrafficVector), rows)
    seen = session.execute(
        update(LabelSet)
        .where(LabelSet.id == label_set_id)
        .values(traffic_seen=LabelSet.traffic_seen + len(vectors))
        .returning(LabelSet.traffic_seen)
    ).scalar_one()
    return int(seen)


def latest(session: Session, *, label_set_id: int, model_id: str, limit: int) -> list[bytes]:
    rows = session.scalars(
        select(TrafficVector.vector)
        .where(TrafficVector.label_set_id == label_set_id, TrafficVector.model_id == model_id)
        .order_by(TrafficVector.id.desc())
        .limit(limit)
    )
    return list(rows)[::-1]


def prune(session: Session, *, label_set_id: int, model_id: str, keep: int) -> None:
    """Delete all but the newest ``keep`` vectors of the set and model."""
    cutoff = session.scalar(
        select(TrafficVector.id)
        .where(TrafficVector.label_set_id == label_set_id, TrafficVector.model_id == model_id)
        .order_by(TrafficVector.id.desc())
        .offset(keep)
        .limit(1)
    )
    if cutoff is not None:
        session.execute(
            delete(TrafficVector).where(
                TrafficVector.label_set_id == label_set_id,
                TrafficVector.model_id == model_id,
                TrafficVector.id <= cutoff,
            )
        )
