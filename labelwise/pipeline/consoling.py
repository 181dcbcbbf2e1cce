"""The tenant admin console's use cases: sign-in, label sets, drafts, versions.

Every function takes the signed-in tenant's id and reaches only that tenant's rows; another tenant's
set is a NotFoundError, as in the API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.orm import Session

from labelwise.console import diff, forms
from labelwise.errors import ConflictError, InvalidDocumentError, NotFoundError, UnauthorizedError
from labelwise.labelset import parse_document
from labelwise.models import console, labelsets
from labelwise.models.tables import utcnow
from labelwise.pipeline.labelling import label_set_versions, rollback_label_set


@dataclass(frozen=True)
class Admin:
    """Who is signed in: the tenant, the prefix of the token the session was made from, its CSRF token."""

    tenant_id: int
    tenant: str
    token_prefix: str
    csrf: str

    @property
    def who(self) -> str:
        """What a version made in the console records as its author."""
        return f"console {self.token_prefix}"


def sign_in(session: Session, *, token: str, lifetime_s: int) -> str:
    """A console session made from a live tenant token; returns the cookie secret.
    Raises UnauthorizedError for an unknown or revoked token."""
    row = console.live_token(session, token.strip())
    if row is None:
        raise UnauthorizedError("unknown or revoked token")
    _, secret = console.create_session(session, tenant_id=row.tenant_id, token_id=row.id, lifetime_s=lifetime_s)
    return secret


def admin_for(session: Session, secret: str) -> Admin | None:
    """The signed-in admin of a live session (unexpired, token unrevoked), else None."""
    found = console.live_session(session, secret)
    if found is None:
        return None
    row, tenant, prefix = found
    return Admin(tenant_id=tenant.id, tenant=tenant.name, token_prefix=prefix, csrf=row.csrf)


def sign_out(session: Session, secret: str) -> None:
    console.delete_session(session, secret)


def set_list(session: Session, *, tenant_id: int) -> list[dict[str, Any]]:
    """The tenant's sets with current version, size and jobs in the last 24 h, then unsaved new sets."""
    documents = console.current_documents(session, tenant_id=tenant_id)
    traffic = console.jobs_since(session, tenant_id=tenant_id, since=utcnow() - dt.timedelta(hours=24))
    drafts = set(console.draft_names(session, tenant_id=tenant_id))
    out = [
        {
            "name": name,
            "version": version,
            "labels": len(doc["labels"]),
            "examples": sum(len(x.get("examples", [])) for x in doc["labels"]),
            "traffic_24h": traffic.get(name, 0),
            "draft": name in drafts,
        }
        for name, (version, doc) in sorted(documents.items())
    ]
    new = sorted(drafts - set(documents))
    out += [{"name": n, "version": None, "labels": 0, "examples": 0, "traffic_24h": 0, "draft": True} for n in new]
    return out


def editor_state(session: Session, *, tenant_id: int, name: str) -> dict[str, Any]:
    """``{"draft", "current_version", "has_draft", "base_version"}``: the draft being edited, else the
    current version as a draft. NotFoundError when the tenant has neither."""
    label_set = labelsets.find_label_set(session, tenant_id=tenant_id, name=name)
    current = label_set.current_version if label_set is not None else None
    saved = console.get_draft(session, tenant_id=tenant_id, name=name)
    if saved is not None:
        return {
            "draft": saved.document,
            "current_version": current,
            "has_draft": True,
            "base_version": saved.base_version,
        }
    if label_set is None or current is None:
        raise NotFoundError(f"unknown label set {name!r}")
    version = labelsets.get_version(session, tenant_id=tenant_id, label_set_id=label_set.id, version=current)
    return {
        "draft": forms.from_document(version.document),
        "current_version": current,
        "has_draft": False,
        "base_version": current,
    }


def start_set(session: Session, *, tenant_id: int, name: str) -> None:
    """A draft for a new set; ConflictError when the set (or a draft of it) exists; InvalidInputError
    for a name the API would refuse."""
    parse_document(forms.to_data({**forms.new_draft(name), "labels": [{**forms.blank_label(), "name": "x"}]}))
    if labelsets.find_label_set(session, tenant_id=tenant_id, name=name) is not None:
        raise ConflictError(f"label set {name!r} already exists")
    if console.get_draft(session, tenant_id=tenant_id, name=name) is not None:
        raise ConflictError(f"label set {name!r} is already being created")
    console.put_draft(session, tenant_id=tenant_id, name=name, document=forms.new_draft(name), base_version=None)


def put_draft(session: Session, *, tenant_id: int, name: str, draft: dict[str, Any]) -> None:
    """Keep the editor's state; NotFoundError for a set the tenant neither has nor is creating."""
    state = editor_state(session, tenant_id=tenant_id, name=name)
    if draft != state["draft"]:  # an untouched form makes no draft
        console.put_draft(session, tenant_id=tenant_id, name=name, document=draft, base_version=state["base_version"])


def save_draft(session: Session, *, tenant_id: int, name: str, created_by: str, max_labels: int) -> tuple[int, bool]:
    """Store the draft as the next version (an unchanged document makes none) and drop the draft.
    Returns ``(current version, created)``; raises InvalidDocumentError by field."""
    state = editor_state(session, tenant_id=tenant_id, name=name)
    doc = forms.to_document(state["draft"], max_labels=max_labels)
    version, created = labelsets.apply_document(session, tenant_id=tenant_id, doc=doc, created_by=created_by)
    console.delete_draft(session, tenant_id=tenant_id, name=name)
    return version.version, created


def discard_draft(session: Session, *, tenant_id: int, name: str) -> bool:
    """Drop the draft; returns whether the set has a saved version to go back to. NotFoundError when
    the tenant has neither the set nor a draft of it."""
    editor_state(session, tenant_id=tenant_id, name=name)
    console.delete_draft(session, tenant_id=tenant_id, name=name)
    label_set = labelsets.find_label_set(session, tenant_id=tenant_id, name=name)
    return label_set is not None and label_set.current_version is not None


def import_yaml(session: Session, *, tenant_id: int, name: str, text: str, max_labels: int) -> None:
    """A YAML document becomes the set's draft (its name is the page's); InvalidDocumentError by field."""
    editor_state(session, tenant_id=tenant_id, name=name)  # NotFoundError first
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidDocumentError(f"not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise InvalidDocumentError("the YAML is not a label-set document (a mapping with labels)")
    doc = parse_document({**data, "name": name}, max_labels=max_labels)
    put_draft(session, tenant_id=tenant_id, name=name, draft=forms.from_document(doc.model_dump(mode="json")))


def export_yaml(session: Session, *, tenant_id: int, name: str, which: str, max_labels: int) -> str:
    """The current version (``which="current"``) or the draft as YAML; the draft must be valid."""
    state = editor_state(session, tenant_id=tenant_id, name=name)
    if which == "current":
        return diff.to_yaml(_version_document(session, tenant_id=tenant_id, name=name, version=None))
    doc = forms.to_document(state["draft"], max_labels=max_labels).model_dump(mode="json", exclude_none=True)
    return diff.to_yaml(doc)


def delete_set(session: Session, *, tenant_id: int, name: str) -> None:
    """Delete the set (as the API does) and any draft of it; NotFoundError when there is neither."""
    draft = console.get_draft(session, tenant_id=tenant_id, name=name)
    console.delete_draft(session, tenant_id=tenant_id, name=name)
    try:
        labelsets.delete_label_set(session, tenant_id=tenant_id, name=name)
    except NotFoundError:
        if draft is None:
            raise


def versions(session: Session, *, tenant_id: int, name: str) -> list[dict[str, Any]]:
    """Every version, newest first, with when and who made it."""
    label_set = labelsets.get_label_set(session, tenant_id=tenant_id, name=name)
    authors = console.version_authors(session, tenant_id=tenant_id, label_set_id=label_set.id)
    rows = label_set_versions(session, tenant_id=tenant_id, name=name)
    return [{**row, "created_by": authors.get(row["version"])} for row in reversed(rows)]


def _version_document(session: Session, *, tenant_id: int, name: str, version: int | None) -> dict[str, Any]:
    label_set = labelsets.get_label_set(session, tenant_id=tenant_id, name=name)
    number = version if version is not None else label_set.current_version
    if number is None:
        raise NotFoundError(f"label set {name!r} has no version")
    return labelsets.get_version(session, tenant_id=tenant_id, label_set_id=label_set.id, version=number).document


def version_diff(session: Session, *, tenant_id: int, name: str, old: int, new: int) -> dict[str, Any]:
    """The readable diff of two versions and their YAML's unified diff; NotFoundError for a missing one."""
    a = _version_document(session, tenant_id=tenant_id, name=name, version=old)
    b = _version_document(session, tenant_id=tenant_id, name=name, version=new)
    return {
        "changes": diff.diff_documents(a, b),
        "unified": diff.unified(a, b, old_name=f"version {old}", new_name=f"version {new}"),
    }


def draft_diff(session: Session, *, tenant_id: int, name: str, max_labels: int) -> dict[str, Any] | None:
    """What saving the draft would change against the current version; None when it is invalid or new."""
    state = editor_state(session, tenant_id=tenant_id, name=name)
    if state["current_version"] is None:
        return None
    try:
        draft = forms.to_document(state["draft"], max_labels=max_labels).model_dump(mode="json")
    except InvalidDocumentError:
        return None
    return diff.diff_documents(_version_document(session, tenant_id=tenant_id, name=name, version=None), draft)


def rollback(session: Session, *, tenant_id: int, name: str, version: int) -> None:
    rollback_label_set(session, tenant_id=tenant_id, name=name, version=version)
