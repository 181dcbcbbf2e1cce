"""Platform events in: verify the signature first, then parse, dedupe, and enqueue a classification."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.crypto import SecretBox
from labelwise.errors import InvalidInputError, LabelwiseError, NotFoundError, UnauthorizedError
from labelwise.integrations import ADAPTERS
from labelwise.integrations.base import Inbound
from labelwise.messages import parse_message
from labelwise.models import integrations, tenants
from labelwise.models.tables import Integration, Job
from labelwise.pipeline.classifying import new_job_id, publish_committed, submit_job, with_text
from labelwise.pipeline.common import database_errors

log = logging.getLogger(__name__)


def receive_event(
    sessions: sessionmaker[Session],
    box: SecretBox,
    *,
    kind: str,
    public_id: str | None,
    headers: Mapping[str, str],
    body: bytes,
    now_s: float,
    tolerance_s: int,
    max_text_chars: int,
    publish: Callable[[Job], None],
    http: Callable[[], httpx.Client] | None = None,
) -> dict[str, Any]:
    """Handle one inbound webhook; returns the JSON to answer with.

    An event whose text lives on the platform (a Confluence page) is fetched with a client from ``http``
    (the outbound guard applies) unless the event was seen before.

    Raises NotFoundError (unknown integration), UnauthorizedError (bad signature or stale timestamp),
    InvalidInputError (malformed body, integration without a label set), UpstreamUnavailableError (the
    platform did not answer the fetch). Nothing is enqueued then.
    """
    adapter = ADAPTERS[kind]
    with database_errors(), sessions() as session:
        row = _route(session, adapter, kind=kind, public_id=public_id, body=body)
        _verify(adapter, box, row, headers, body, now_s, tolerance_s)
        stated = adapter.route_key(body) if row.inbound_key else None
        if stated is not None and stated != row.inbound_key:  # one app's secret shared by several workspaces
            raise NotFoundError("this event's app and workspace are not this integration's")
        tenant, name, label_set = row.tenant_id, row.name, row.label_set
        config = adapter.settings_model.model_validate(row.config)
    inbound = parse_verified(adapter, body, config, kind=kind, headers=headers)
    if inbound.answer is not None:
        return inbound.answer
    if inbound.ignored is not None or inbound.event_id is None:
        return {"ok": True, "ignored": inbound.ignored}
    if not label_set:
        raise InvalidInputError(f"integration {name!r} has no label_set for events coming in", field="label_set")
    if inbound.needs_text:
        with database_errors(), sessions() as session:
            if integrations.event_seen(session, integration_id=row.id, event_id=inbound.event_id):
                return {"ok": True, "duplicate": True}
            secrets = adapter.secrets_model.model_validate(box.open(row.secrets))
        if http is None:
            raise InvalidInputError(f"{kind} events need an outbound HTTP client")
        with http() as client:
            text = adapter.fetch_text(inbound.target or {}, config, secrets, client)  # type: ignore[attr-defined]
        if not text.strip():
            return {"ok": True, "ignored": "empty page"}
        inbound = replace(inbound, text=text, needs_text=False)
    return _enqueue(
        sessions,
        row_id=row.id,
        tenant_id=tenant,
        integration=name,
        label_set=label_set,
        inbound=inbound,
        kind=kind,
        max_text_chars=max_text_chars,
        publish=publish,
    )


def _route(session: Session, adapter: Any, *, kind: str, public_id: str | None, body: bytes) -> Integration:
    """The one integration this request is for: named by its public id, else by the routing key the
    event states about itself (Slack: api_app_id + team_id). Never a search over every secret."""
    if public_id:
        row = integrations.by_public_id(session, public_id)
    else:
        key = adapter.route_key(body)
        row = integrations.by_inbound_key(session, key) if key else None
    if row is None or row.kind != kind:
        raise NotFoundError("unknown integration")
    return row


def _verify(
    adapter: Any,
    box: SecretBox,
    row: Integration,
    headers: Mapping[str, str],
    body: bytes,
    now_s: float,
    tolerance_s: int,
) -> None:
    """Check the request against this integration's secret only (before the body is parsed)."""
    try:
        secrets = adapter.secrets_model.model_validate(box.open(row.secrets))
    except (LabelwiseError, ValidationError) as e:  # a rotated-away key, a damaged row: refused, not a 500
        log.error("integration %s: its secrets cannot be read: %s", row.public_id, e)
        raise UnauthorizedError("this integration cannot check signatures: its stored secrets cannot be read") from e
    check_signature(adapter, secrets, headers, body, now_s=now_s, tolerance_s=tolerance_s)


def check_signature(
    adapter: Any, secrets: Any, headers: Mapping[str, str], body: bytes, *, now_s: float, tolerance_s: int
) -> None:
    """The platform's signature check; raises UnauthorizedError only."""
    try:
        adapter.verify(headers, body, secrets, now_s, tolerance_s)
    except InvalidInputError as e:  # missing or malformed signature headers, no signing secret
        raise UnauthorizedError(e.message) from e


def parse_verified(
    adapter: Any, body: bytes, config: Any, *, kind: str, headers: Mapping[str, str] | None = None
) -> Inbound:
    """A verified body as an Inbound; raises InvalidInputError only, whatever the body holds."""
    try:
        return adapter.parse(body, config, headers)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as e:
        raise InvalidInputError(f"malformed {kind} event: {type(e).__name__}") from e


def _enqueue(
    sessions: sessionmaker[Session],
    *,
    row_id: int,
    tenant_id: int,
    integration: str,
    label_set: str,
    inbound: Inbound,
    kind: str,
    max_text_chars: int,
    publish: Callable[[Job], None],
) -> dict[str, Any]:
    assert inbound.event_id is not None and inbound.text is not None
    with database_errors(), sessions.begin() as session:
        tenant_name = tenants.get_tenant_by_id(session, tenant_id).name
        msg = parse_message(
            {
                "tenant": tenant_name,
                "label_set": label_set,
                "text": inbound.text[:max_text_chars],
                "idempotency_key": f"{kind}:{inbound.event_id}"[:200],
                "reply_to": {"integration": integration, **(inbound.target or {})},
            },
            max_text_chars=max_text_chars,
        )
        try:
            with session.begin_nested():
                integrations.remember_event(session, integration_id=row_id, event_id=inbound.event_id)
        except IntegrityError:
            return {"ok": True, "duplicate": True}
        job, created = submit_job(session, msg, job_id=new_job_id())
    if created:  # the event and its job are committed: if publishing fails, the reconciler publishes it
        publish_committed(sessions, [with_text(job, msg)], publish)
    return {"ok": True, "job_id": job.id}
