"""Integrations: configure them, and plan a job's deliveries (``delivering`` sends them)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from labelwise.crypto import SecretBox
from labelwise.errors import ConflictError
from labelwise.integrations import ADAPTERS
from labelwise.integrations.document import parse_integration, validated
from labelwise.models import integrations
from labelwise.models.tables import Integration, Job

log = logging.getLogger(__name__)
HOOK_PATHS = {
    "slack": "/hooks/slack/events?integration={id}",
    "jira": "/hooks/jira/{id}",
    "zendesk": "/hooks/zendesk/{id}",
    "github": "/hooks/github/{id}",
    "confluence": "/hooks/confluence/{id}",
}


def apply_integration(session: Session, box: SecretBox, *, tenant_id: int, data: Any) -> tuple[dict[str, Any], bool]:
    """Create or update an integration from its document; returns ``(view, created)``."""
    doc = parse_integration(data)
    adapter = ADAPTERS[doc.kind]
    settings = validated(adapter.settings_model, doc.settings, prefix="settings")
    existing = integrations.find_integration(session, tenant_id=tenant_id, name=doc.name)
    stored = box.open(existing.secrets) if existing is not None and existing.kind == doc.kind else {}
    merged = {k: v for k, v in {**stored, **(doc.secrets or {})}.items() if v is not None}
    secrets = validated(adapter.secrets_model, merged, prefix="secrets")
    inbound_key = adapter.inbound_key(settings)
    claimed = integrations.by_inbound_key(session, inbound_key) if inbound_key else None
    if claimed is not None and (existing is None or claimed.id != existing.id):
        raise ConflictError(
            "another integration already receives this Slack app's events from this workspace "
            "(settings.api_app_id + settings.team_id); use the hook URL with ?integration= instead"
        )
    row, created = integrations.upsert_integration(
        session,
        tenant_id=tenant_id,
        name=doc.name,
        kind=doc.kind,
        label_set=doc.label_set,
        config=settings.model_dump(mode="json"),
        secrets=box.seal(secrets.model_dump(exclude_none=True)),
        inbound_key=inbound_key,
    )
    return integration_view(row, secret_names=sorted(secrets.model_dump(exclude_none=True))), created


def rekey_integrations(session: Session, box: SecretBox) -> int:
    """Re-encrypt every integration's secrets with the box's first key; how many. Raises LabelwiseError
    (nothing changed, the caller's transaction rolls back) when one cannot be opened with any key."""
    rows = integrations.all_integrations(session)
    for row in rows:
        row.secrets = box.rotate(row.secrets)
    return len(rows)


def integration_view(row: Integration, *, secret_names: list[str] | None = None) -> dict[str, Any]:
    """Everything about an integration except its secrets' values."""
    return {
        "name": row.name,
        "kind": row.kind,
        "id": row.public_id,
        "label_set": row.label_set,
        "settings": row.config,
        "secrets_set": secret_names,
        "hook_path": HOOK_PATHS[row.kind].format(id=row.public_id) if row.kind in HOOK_PATHS else None,
        "updated_at": row.updated_at.isoformat(),
    }


def get_integration(session: Session, box: SecretBox, *, tenant_id: int, name: str) -> dict[str, Any]:
    row = integrations.get_integration(session, tenant_id=tenant_id, name=name)
    return integration_view(row, secret_names=sorted(box.open(row.secrets)))


def list_integrations(session: Session, box: SecretBox, *, tenant_id: int) -> list[dict[str, Any]]:
    return [
        integration_view(r, secret_names=sorted(box.open(r.secrets)))
        for r in integrations.list_integrations(session, tenant_id=tenant_id)
    ]


def delete_integration(session: Session, *, tenant_id: int, name: str) -> None:
    integrations.delete_integration(session, tenant_id=tenant_id, name=name)


Target = tuple[Integration, dict[str, Any] | None]  # an integration, and where in it (a reply_to's channel...)


def plan_deliveries(
    session: Session, job: Job, *, subscribers: dict[tuple[int, str], list[Integration]] | None = None
) -> list[str]:
    """One pending delivery per target of a done job: its reply_to integration and subscribed webhooks.
    A reply_to naming no integration of the tenant adds a warning to the job's result instead.

    ``subscribers`` memoises the subscribed webhooks per (tenant, label set) across a batch."""
    return add_deliveries(session, job, delivery_targets(session, job, subscribers=subscribers))


def delivery_targets(
    session: Session, job: Job, *, subscribers: dict[tuple[int, str], list[Integration]] | None = None
) -> list[Target]:
    """Where a done job's result goes (see plan_deliveries); the warning, if any, is added to its result."""
    if job.tenant_id is None:
        return []
    targets: list[Target] = []
    if job.reply_to:
        row = integrations.find_integration(session, tenant_id=job.tenant_id, name=str(job.reply_to["integration"]))
        if row is None:
            warning = f"reply_to names unknown integration {job.reply_to['integration']!r}: no reply was sent"
            log.warning("job %s: %s", job.id, warning, extra={"job_id": job.id})
            job.result = {**(job.result or {}), "warnings": [*(job.result or {}).get("warnings", []), warning]}
        else:
            targets.append((row, {k: v for k, v in job.reply_to.items() if k != "integration"}))
    memo = {} if subscribers is None else subscribers
    key = (job.tenant_id, job.label_set_name)
    if key not in memo:
        memo[key] = integrations.subscribers(session, tenant_id=job.tenant_id, label_set=job.label_set_name)
    for row in memo[key]:
        if all(row.id != t.id for t, _ in targets):
            targets.append((row, None))
    return targets


def add_deliveries(session: Session, job: Job, targets: list[Target]) -> list[str]:
    """A pending delivery per target (none twice for the same job and integration); their ids."""
    if job.tenant_id is None:
        return []
    planned = [
        integrations.add_delivery(session, tenant_id=job.tenant_id, job_id=job.id, integration_id=row.id, target=target)
        for row, target in targets
    ]
    return [d.id for d in planned if d is not None]


def pending_deliveries(session: Session, job_id: str) -> list[str]:
    return [d.id for d in integrations.deliveries_of_job(session, job_id) if d.status == "pending"]
