"""Label sets: apply a document, read versions, roll back, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from labelwise.errors import NotFoundError
from labelwise.labelset import LabelSetDocument
from labelwise.models import labelsets, tenants
from labelwise.models.tables import LabelSetVersion


def apply_label_set(
    session: Session,
    *,
    tenant: str,
    doc: LabelSetDocument,
    created_by: str | None = None,
    expected_version: int | str | None = None,
) -> tuple[LabelSetVersion, bool]:
    """Store a label-set document as the new current version (no-op when unchanged); with
    ``expected_version``, only if that is still the current one (else VersionConflictError)."""
    tenant_row = tenants.get_tenant(session, tenant)
    return labelsets.apply_document(
        session, tenant_id=tenant_row.id, doc=doc, created_by=created_by, expected_version=expected_version
    )


def label_set_summaries(session: Session, *, tenant_id: int) -> list[dict[str, Any]]:
    rows = labelsets.list_label_sets(session, tenant_id=tenant_id)
    return [{"name": r.name, "current_version": r.current_version} for r in rows]


def label_set_version(session: Session, *, tenant_id: int, name: str, version: int | None = None) -> dict[str, Any]:
    """One version of a label set (the current one by default) as a view; raises NotFoundError."""
    label_set = labelsets.get_label_set(session, tenant_id=tenant_id, name=name)
    number = version if version is not None else label_set.current_version
    if number is None:
        raise NotFoundError(f"label set {name!r} has no version")
    row = labelsets.get_version(session, tenant_id=tenant_id, label_set_id=label_set.id, version=number)
    return {"name": name, **version_view(row, current=label_set.current_version)}


def label_set_versions(session: Session, *, tenant_id: int, name: str) -> list[dict[str, Any]]:
    label_set = labelsets.get_label_set(session, tenant_id=tenant_id, name=name)
    rows = labelsets.list_versions(session, tenant_id=tenant_id, label_set_id=label_set.id)
    return [{"name": name, **version_view(r, current=label_set.current_version)} for r in rows]


def rollback_label_set(session: Session, *, tenant_id: int, name: str, version: int) -> dict[str, Any]:
    labelsets.rollback(session, tenant_id=tenant_id, name=name, version=version)
    return label_set_version(session, tenant_id=tenant_id, name=name)


def delete_label_set(session: Session, *, tenant_id: int, name: str) -> None:
    labelsets.delete_label_set(session, tenant_id=tenant_id, name=name)


def version_view(version: LabelSetVersion, *, current: int | None = None) -> dict[str, Any]:
    return {
        "version": version.version,
        "current": version.version == current if current is not None else None,
        "created_at": version.created_at.isoformat(),
        "document": version.document,
    }
