"""Label sets and their immutable, numbered versions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labelwise.errors import NotFoundError, VersionConflictError
from labelwise.labelset import LabelSetDocument
from labelwise.models.tables import LabelSet, LabelSetVersion, utcnow


def find_label_set(session: Session, *, tenant_id: int, name: str) -> LabelSet | None:
    """The live (not deleted) label set, or None."""
    return session.scalar(
        select(LabelSet).where(LabelSet.tenant_id == tenant_id, LabelSet.name == name, LabelSet.deleted_at.is_(None))
    )


def get_label_set(session: Session, *, tenant_id: int, name: str) -> LabelSet:
    label_set = find_label_set(session, tenant_id=tenant_id, name=name)
    if label_set is None:
        raise NotFoundError(f"unknown label set {name!r}")
    return label_set


def list_label_sets(session: Session, *, tenant_id: int) -> list[LabelSet]:
    return list(
        session.scalars(
            select(LabelSet)
            .where(LabelSet.tenant_id == tenant_id, LabelSet.deleted_at.is_(None))
            .order_by(LabelSet.name)
        )
    )


def get_version(session: Session, *, tenant_id: int, label_set_id: int, version: int) -> LabelSetVersion:
    row = session.scalar(
        select(LabelSetVersion).where(
            LabelSetVersion.tenant_id == tenant_id,
            LabelSetVersion.label_set_id == label_set_id,
            LabelSetVersion.version == version,
        )
    )
    if row is None:
        raise NotFoundError(f"label set has no version {version}")
    return row


def current_version(session: Session, *, tenant_id: int, name: str) -> LabelSetVersion:
    """The version a new message uses; raises NotFoundError."""
    label_set = get_label_set(session, tenant_id=tenant_id, name=name)
    if label_set.current_version is None:
        raise NotFoundError(f"label set {name!r} has no version")
    return get_version(session, tenant_id=tenant_id, label_set_id=label_set.id, version=label_set.current_version)


def current_version_ref(session: Session, *, tenant_id: int, name: str) -> tuple[int, int, int, int]:
    """``(version row id, version number, label set id, messages seen)`` a new message uses, without
    loading the document."""
    row = session.execute(
        select(LabelSetVersion.id, LabelSetVersion.version, LabelSet.id, LabelSet.traffic_seen)
        .join(LabelSet, LabelSet.id == LabelSetVersion.label_set_id)
        .where(
            LabelSet.tenant_id == tenant_id,
            LabelSet.name == name,
            LabelSet.deleted_at.is_(None),
            LabelSetVersion.version == LabelSet.current_version,
        )
    ).first()
    if row is None:
        raise NotFoundError(f"unknown label set {name!r}")
    return row[0], row[1], row[2], row[3]


def version_document(session: Session, version_id: int) -> dict[str, Any]:
    document = session.scalar(select(LabelSetVersion.document).where(LabelSetVersion.id == version_id))
    if document is None:
        raise NotFoundError(f"no label-set version {version_id}")
    return document


def list_versions(session: Session, *, tenant_id: int, label_set_id: int) -> list[LabelSetVersion]:
    return list(
        session.scalars(
            select(LabelSetVersion)
            .where(LabelSetVersion.tenant_id == tenant_id, LabelSetVersion.label_set_id == label_set_id)
            .order_by(LabelSetVersion.version)
        )
    )


def lock_label_set(session: Session, *, tenant_id: int, name: str) -> LabelSet:
    """The live label set, locked until the transaction ends (PostgreSQL: other writers of this set wait,
    so what is read from it now is still current when it is written); raises NotFoundError."""
    label_set = session.scalar(
        select(LabelSet)
        .where(LabelSet.tenant_id == tenant_id, LabelSet.name == name, LabelSet.deleted_at.is_(None))
        .with_for_update()
    )
    if label_set is None:
        raise NotFoundError(f"unknown label set {name!r}")
    return label_set


def apply_document(
    session: Session,
    *,
    tenant_id: int,
    doc: LabelSetDocument,
    created_by: str | None = None,
    expected_version: int | str | None = None,
) -> tuple[LabelSetVersion, bool]:
    """Store ``doc`` as the set's new current version; ``created_by`` says who (shown in the console).

    Returns ``(version, created)``; an unchanged document is a no-op returning the current version.
    A deleted set of the same name comes back, its version numbers going on from where they were.
    ``expected_version`` makes it a compare-and-set: the set's current version must be that number
    (``"*"``: any, but the set must exist), checked under the set's row lock; else ConflictError.
    """
    label_set = session.scalar(
        select(LabelSet).where(LabelSet.tenant_id == tenant_id, LabelSet.name == doc.name).with_for_update()
    )
    if expected_version is not None:
        check_version(label_set, expected_version)
    if label_set is None:
        label_set = LabelSet(tenant_id=tenant_id, name=doc.name)
        session.add(label_set)
        session.flush()
    content_hash = doc.content_hash()
    if label_set.deleted_at is None and label_set.current_version is not None:
        current = get_version(
            session, tenant_id=tenant_id, label_set_id=label_set.id, version=label_set.current_version
        )
        if current.content_hash == content_hash:
            return current, False
    last = session.scalar(select(func.max(LabelSetVersion.version)).where(LabelSetVersion.label_set_id == label_set.id))
    row = LabelSetVersion(
        tenant_id=tenant_id,
        label_set_id=label_set.id,
        version=(last or 0) + 1,
        document=doc.model_dump(mode="json"),
        content_hash=content_hash,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    label_set.current_version = row.version
    label_set.deleted_at = None
    return row, True


def check_version(label_set: LabelSet | None, expected: int | str) -> None:
    """Raises ConflictError unless ``label_set`` is live at version ``expected`` (``"*"``: at any)."""
    current = label_set.current_version if label_set is not None and label_set.deleted_at is None else None
    if current is None or (expected != "*" and current != expected):
        now = f"its current version is {current}" if current is not None else "it does not exist"
        raise VersionConflictError(
            f"label set changed: expected version {expected}, but {now}; read it again and reapply your change",
            current_version=current,
        )


def rollback(session: Session, *, tenant_id: int, name: str, version: int) -> LabelSetVersion:
    """Point the set back at an older version (no new version is made)."""
    label_set = get_label_set(session, tenant_id=tenant_id, name=name)
    row = get_version(session, tenant_id=tenant_id, label_set_id=label_set.id, version=version)
    label_set.current_version = row.version
    return row


def delete_label_set(session: Session, *, tenant_id: int, name: str) -> None:
    """Soft-delete: new messages can no longer use it; jobs keep their versions."""
    label_set = get_label_set(session, tenant_id=tenant_id, name=name)
    label_set.deleted_at = utcnow()
