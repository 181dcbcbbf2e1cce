"""Integrations: configure them, plan a job's deliveries, deliver, replay the dead ones."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from labelwise.crypto import SecretBox
from labelwise.errors import ConflictError, LabelwiseError, PermanentDeliveryError
from labelwise.integrations import ADAPTERS
from labelwise.integrations.base import Payload, SendOutcome, send_steps
from labelwise.integrations.document import parse_integration, validated
from labelwise.models import integrations, jobs
from labelwise.models.tables import Delivery, Integration, Job, utcnow
from labelwise.pipeline.common import database_errors
from labelwise.pipeline.views import job_view

log = logging.getLogger(__name__)
HOOK_PATHS = {
    "slack": "/hooks/slack/events?integration={id}",
    "jira": "/hooks/jira/{id}",
    "zendesk": "/hooks/zendesk/{id}",
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
    row, created = integrations.upsert_integration(
        session,
        tenant_id=tenant_id,
        name=doc.name,
        kind=doc.kind,
        label_set=doc.label_set,
        config=settings.model_dump(mode="json"),
        secrets=box.seal(secrets.model_dump(exclude_none=True)),
    )
    return integration_view(row, secret_names=sorted(secrets.model_dump(exclude_none=True))), created


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


def plan_deliveries(
    session: Session, job: Job, *, subscribers: dict[tuple[int, str], list[Integration]] | None = None
) -> list[str]:
    """One pending delivery per target of a done job: its reply_to integration and subscribed webhooks.
    A reply_to naming no integration of the tenant adds a warning to the job's result instead.

    ``subscribers`` memoises the subscribed webhooks per (tenant, label set) across a batch."""
    if job.tenant_id is None:
        return []
    targets: list[tuple[Integration, dict[str, Any] | None]] = []
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
    planned = [
        integrations.add_delivery(session, tenant_id=job.tenant_id, job_id=job.id, integration_id=row.id, target=target)
        for row, target in targets
    ]
    return [d.id for d in planned if d is not None]


def pending_deliveries(session: Session, job_id: str) -> list[str]:
    return [d.id for d in integrations.deliveries_of_job(session, job_id) if d.status == "pending"]


def deliver(
    sessions: sessionmaker[Session],
    box: SecretBox,
    client: httpx.Client,
    delivery_id: str,
    *,
    max_attempts: int,
    delay_s: Callable[[int, float | None], float],
) -> tuple[str, float | None, str | None, str]:
    """One attempt at a delivery; returns ``(status, retry in s, error, integration kind)`` (the delay
    only when retrying)."""
    with database_errors(), sessions.begin() as session:
        delivery = integrations.get_delivery(session, delivery_id)
        integration = session.get(Integration, delivery.integration_id)
        kind = integration.kind if integration is not None else "unknown"
        if delivery.status in ("delivered", "dead"):
            return delivery.status, None, None, kind
        delivery.attempts += 1
        attempt, done = delivery.attempts, list(delivery.steps_done or [])
        prepared = _prepare(session, box, delivery)
    if isinstance(prepared, PermanentDeliveryError):
        outcome = SendOutcome(done, prepared)
    else:
        outcome = send_steps(client, prepared, steps_done=done)
    with database_errors(), sessions.begin() as session:
        delivery = integrations.get_delivery(session, delivery_id)
        delivery.steps_done = outcome.steps_done
        status, wait_s = _record(delivery, outcome, attempt=attempt, max_attempts=max_attempts, delay_s=delay_s)
        return status, wait_s, delivery.last_error, kind


def _prepare(session: Session, box: SecretBox, delivery: Delivery) -> Any:
    """The steps to send, or the PermanentDeliveryError that makes sending pointless."""
    job = jobs.get_job(session, delivery.job_id)
    row = session.get(Integration, delivery.integration_id)
    assert row is not None  # deliveries cascade with their integration
    adapter = ADAPTERS[row.kind]
    try:
        config = adapter.settings_model.model_validate(row.config)
        secrets = adapter.secrets_model.model_validate(box.open(row.secrets))
        payload = Payload(delivery.id, job_view(job), job.text, delivery.target or {})
        return adapter.build_steps(payload, config, secrets)
    except (LabelwiseError, KeyError, ValueError) as e:
        return PermanentDeliveryError(f"cannot build the request: {type(e).__name__}: {e}")


def _record(
    delivery: Delivery,
    outcome: SendOutcome,
    *,
    attempt: int,
    max_attempts: int,
    delay_s: Callable[[int, float | None], float],
) -> tuple[str, float | None]:
    error = outcome.error
    if error is None:
        delivery.status, delivery.delivered_at, delivery.last_error = "delivered", utcnow(), None
        return "delivered", None
    delivery.last_error = f"attempt {attempt}: {error.message}"
    if isinstance(error, PermanentDeliveryError) or attempt >= max_attempts:
        delivery.status, delivery.next_attempt_at = "dead", None
        return "dead", None
    wait_s = delay_s(attempt, getattr(error, "retry_after_s", None))
    delivery.status, delivery.next_attempt_at = "retrying", utcnow() + dt.timedelta(seconds=wait_s)
    return "retrying", wait_s


def delivery_view(row: Delivery, integration: Integration | None = None) -> dict[str, Any]:
    """A delivery as the CLI lists it; with its integration, that integration's name and kind."""
    return {
        "delivery_id": row.id,
        "job_id": row.job_id,
        "integration": integration.name if integration is not None else None,
        "kind": integration.kind if integration is not None else None,
        "status": row.status,
        "attempts": row.attempts,
        "steps_done": row.steps_done,
        "last_error": row.last_error,
        "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
        "created_at": row.created_at.isoformat(),
        "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
    }


def list_deliveries(session: Session, *, tenant_id: int | None, status: str | None, limit: int) -> list[dict[str, Any]]:
    rows = integrations.list_deliveries(session, tenant_id=tenant_id, status=status, limit=limit)
    return [delivery_view(r, session.get(Integration, r.integration_id)) for r in rows]


def replay_deliveries(session: Session, *, tenant_id: int | None, ids: list[str]) -> list[str]:
    """Make dead deliveries (all of them when ``ids`` is empty) pending again; returns their ids."""
    if ids:
        rows = [integrations.get_delivery(session, i, tenant_id=tenant_id) for i in ids]
        if busy := [r.id for r in rows if r.status != "dead"]:
            raise ConflictError(f"only dead deliveries can be replayed: {', '.join(busy)}")
    else:
        rows = integrations.list_deliveries(session, tenant_id=tenant_id, status="dead", limit=10_000)
    for row in rows:
        row.status, row.attempts, row.next_attempt_at = "pending", 0, None
    return [row.id for row in rows]
