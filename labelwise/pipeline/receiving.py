"""Platform events in: verify the signature first, then parse, dedupe, and enqueue a classification."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import httpx
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from labelwise.crypto import SecretBox
from labelwise.errors import InvalidInputError, NotFoundError, UnauthorizedError
from labelwise.integrations import ADAPTERS
from labelwise.integrations.base import Inbound
from labelwise.messages import parse_message
from labelwise.models import integrations, tenants
from labelwise.models.tables import Integration, Job
from labelwise.pipeline.classifying import new_job_id, publish_committed, submit_job
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
        candidates = _candidates(session, kind=kind, public_id=public_id)
        row = _verified(adapter, box, candidates, headers, body, now_s, tolerance_s)
        tenant, name, label_set = row.tenant_id, row.name, row.label_set
        config = adapter.settings_model.model_validate(row.config)
    try:
        inbound = adapter.parse(body, config, headers)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise InvalidInputError(f"malformed {kind} event: {type(e).__name__}") from e
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


def _candidates(session: Session, *, kind: str, public_id: str | None) -> list[Integration]:
    rows = [integrations.by_public_id(session, public_id)] if public_id else integrations.of_kind(session, kind)
    found = [r for r in rows if r is not None and r.kind == kind]
    if not found:
        raise NotFoundError("unknown integration")
    return found


def _verified(
    adapter: Any,
    box: SecretBox,
    candidates: list[Integration],
    headers: Mapping[str, str],
    body: bytes,
    now_s: float,
    tolerance_s: int,
) -> Integration:
    """The candidate whose secret signed this request (checked before the body is parsed)."""
    reason = "signature does not match"
    for row in candidates:
        try:
            secrets = adapter.secrets_model.model_validate(box.open(row.secrets))
            adapter.verify(headers, body, secrets, now_s, tolerance_s)
            return row
        except (UnauthorizedError, InvalidInputError) as e:  # missing or bad signature headers alike
            reason = e.message
    raise UnauthorizedError(reason)


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
        publish_committed(sessions, [job], publish)
    return {"ok": True, "job_id": job.id}
