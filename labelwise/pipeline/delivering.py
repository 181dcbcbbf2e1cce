"""Deliveries: one attempt at a time, with a lease, until delivered or dead; list and replay them.

An attempt first takes the delivery's lease (``leased_until``): a second message for the same delivery
(a redelivery, a reconciler's re-publish) finds it taken, or not yet due, and does nothing. Whatever
happens during the attempt, an unreadable answer, a bug, ends as the schedule says: retrying with
back-off, or dead after the last attempt; never stuck ``pending``. Each completed step (a Slack reply,
a reaction) is recorded at once, so a retry never posts it twice. If the process dies mid-attempt, the
lease runs out and the reconciler publishes the delivery again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from labelwise.crypto import SecretBox
from labelwise.errors import ConflictError, LabelwiseError, PermanentDeliveryError, RetryableDeliveryError
from labelwise.integrations import ADAPTERS
from labelwise.integrations.base import Payload, SendOutcome, Step, send_steps
from labelwise.models import integrations, jobs
from labelwise.models.tables import Delivery, Integration, utcnow
from labelwise.pipeline.common import database_errors
from labelwise.pipeline.views import job_view
from labelwise.priority import TURNS

log = logging.getLogger(__name__)
DUE_SLACK_S = 1.0  # a message may arrive this early for its attempt (clock skew between hosts)


@dataclass(frozen=True)
class Attempt:
    """What one call of :func:`deliver` did: the delivery's status after it, the seconds until its next
    attempt (when ``retrying``), the error of this attempt, and whether it attempted at all."""

    status: str
    wait_s: float | None = None
    error: str | None = None
    attempted: bool = True
    kind: str = "unknown"  # the integration's kind (webhook, slack, ...)


def deliver(
    sessions: sessionmaker[Session],
    box: SecretBox,
    client: httpx.Client,
    delivery_id: str,
    *,
    max_attempts: int,
    delay_s: Callable[[int, float | None], float],
    lease_s: float = 120.0,
) -> Attempt:
    """One attempt at a delivery, unless it is finished, under way elsewhere or not due yet.

    Raises DatabaseUnavailableError (retryable) when the database cannot be reached."""
    TURNS.checkpoint()  # a flood's deliveries wait while a light tenant's express batch runs (not once leased:
    # an attempt killed while it holds its lease is sent again only when the lease ends)
    with database_errors(), sessions.begin() as session:
        delivery = integrations.lock_delivery(session, delivery_id)
        integration = session.get(Integration, delivery.integration_id)
        kind = integration.kind if integration is not None else "unknown"
        skip = _skip_reason(delivery, now=utcnow())
        if skip is not None:
            return Attempt(delivery.status, error=skip, attempted=False, kind=kind)
        delivery.attempts += 1
        delivery.leased_until = delivery.next_attempt_at = utcnow() + dt.timedelta(seconds=lease_s)
        attempt, done = delivery.attempts, list(delivery.steps_done or [])
        prepared = _prepare(session, box, delivery)
    outcome = _send(sessions, client, delivery_id, prepared, done)
    with database_errors(), sessions.begin() as session:
        delivery = integrations.lock_delivery(session, delivery_id)
        delivery.steps_done = outcome.steps_done
        delivery.leased_until = None
        status, wait_s = _record(delivery, outcome, attempt=attempt, max_attempts=max_attempts, delay_s=delay_s)
        return Attempt(status, wait_s, delivery.last_error, kind=kind)


def _skip_reason(delivery: Delivery, *, now: dt.datetime) -> str | None:
    if delivery.status in ("delivered", "dead"):
        return "already finished"
    if delivery.leased_until is not None and delivery.leased_until > now:
        return "an attempt is under way"
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + dt.timedelta(seconds=DUE_SLACK_S):
        return "not due yet"
    return None


def _send(
    sessions: sessionmaker[Session],
    client: httpx.Client,
    delivery_id: str,
    prepared: list[Step] | PermanentDeliveryError,
    done: list[str],
) -> SendOutcome:
    """Send the steps, recording each completed one at once; any unexpected error is a retryable one."""
    if isinstance(prepared, PermanentDeliveryError):
        return SendOutcome(done, prepared)

    def step_done(steps_done: list[str]) -> None:
        with database_errors(), sessions.begin() as session:
            integrations.get_delivery(session, delivery_id).steps_done = list(steps_done)

    try:
        return send_steps(client, prepared, steps_done=done, on_step_done=step_done)
    except LabelwiseError as e:
        return SendOutcome(done, RetryableDeliveryError(f"recording a step failed: {e.message}"))
    except Exception as e:  # a bug must not leave the delivery stuck: it is retried on the schedule
        log.exception("delivery %s: unexpected error", delivery_id)
        return SendOutcome(done, RetryableDeliveryError(f"unexpected error: {type(e).__name__}: {e}"))


def _prepare(session: Session, box: SecretBox, delivery: Delivery) -> list[Step] | PermanentDeliveryError:
    """The steps to send, or the PermanentDeliveryError that makes sending pointless."""
    job = jobs.get_job(session, delivery.job_id)
    row = session.get(Integration, delivery.integration_id)
    assert row is not None  # deliveries cascade with their integration
    adapter = ADAPTERS[row.kind]
    try:
        config = adapter.settings_model.model_validate(row.config)
        secrets = adapter.secrets_model.model_validate(box.open(row.secrets))
        payload = Payload(delivery.id, job_view(job), job.text or "", delivery.target or {})
        return adapter.build_steps(payload, config, secrets)
    except (LabelwiseError, KeyError, ValueError, TypeError) as e:
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
        delivery.next_attempt_at = None
        return "delivered", None
    delivery.last_error = f"attempt {attempt}: {error.message}"[:2000]
    if isinstance(error, PermanentDeliveryError) or attempt >= max_attempts:
        delivery.status, delivery.next_attempt_at = "dead", None
        return "dead", None
    wait_s = delay_s(attempt, error.retry_after_s if isinstance(error, RetryableDeliveryError) else None)
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
        row.status, row.attempts, row.next_attempt_at, row.leased_until = "pending", 0, None, None
        row.enqueued_at = utcnow()  # the caller publishes them now
    return [row.id for row in rows]
