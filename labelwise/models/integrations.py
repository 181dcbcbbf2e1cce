"""Integrations, their deliveries and the inbound event ids already seen."""

from __future__ import annotations

import datetime as dt
import secrets as _secrets
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from labelwise.errors import NotFoundError
from labelwise.models.tables import Delivery, InboundEvent, Integration, utcnow


def find_integration(session: Session, *, tenant_id: int, name: str) -> Integration | None:
    return session.scalar(select(Integration).where(Integration.tenant_id == tenant_id, Integration.name == name))


def get_integration(session: Session, *, tenant_id: int, name: str) -> Integration:
    row = find_integration(session, tenant_id=tenant_id, name=name)
    if row is None:
        raise NotFoundError(f"unknown integration {name!r}")
    return row


def by_public_id(session: Session, public_id: str) -> Integration | None:
    return session.scalar(select(Integration).where(Integration.public_id == public_id))


def by_inbound_key(session: Session, key: str) -> Integration | None:
    """The one integration that hooks routed by ``key`` go to (an indexed, unique column)."""
    return session.scalar(select(Integration).where(Integration.inbound_key == key))


def all_integrations(session: Session) -> list[Integration]:
    """Every tenant's integrations (for re-encrypting their secrets)."""
    return list(session.scalars(select(Integration).order_by(Integration.id)))


def of_kind(session: Session, kind: str) -> list[Integration]:
    return list(session.scalars(select(Integration).where(Integration.kind == kind).order_by(Integration.id)))


def list_integrations(session: Session, *, tenant_id: int) -> list[Integration]:
    return list(
        session.scalars(select(Integration).where(Integration.tenant_id == tenant_id).order_by(Integration.name))
    )


def upsert_integration(session: Session, *, tenant_id: int, name: str, **fields: Any) -> tuple[Integration, bool]:
    """Create or update; returns ``(row, created)``."""
    row = find_integration(session, tenant_id=tenant_id, name=name)
    created = row is None
    if row is None:
        row = Integration(tenant_id=tenant_id, name=name, public_id="int_" + _secrets.token_urlsafe(16))
        session.add(row)
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.flush()
    return row, created


def delete_integration(session: Session, *, tenant_id: int, name: str) -> None:
    session.delete(get_integration(session, tenant_id=tenant_id, name=name))


def subscribers(session: Session, *, tenant_id: int, label_set: str) -> list[Integration]:
    """Webhook integrations subscribed to every result of ``label_set``."""
    rows = session.scalars(select(Integration).where(Integration.tenant_id == tenant_id, Integration.kind == "webhook"))
    return [r for r in rows if label_set in (r.config.get("subscribe") or [])]


def add_delivery(
    session: Session, *, tenant_id: int, job_id: str, integration_id: int, target: dict[str, Any] | None
) -> Delivery | None:
    """A pending delivery, or None when this job already has one for this integration."""
    existing = session.scalar(
        select(Delivery).where(Delivery.job_id == job_id, Delivery.integration_id == integration_id)
    )
    if existing is not None:
        return None
    row = Delivery(
        id="dlv_" + _secrets.token_hex(12),
        tenant_id=tenant_id,
        job_id=job_id,
        integration_id=integration_id,
        target=target,
        steps_done=[],
    )
    session.add(row)
    session.flush()
    return row


def deliveries_due(
    session: Session, *, now: dt.datetime, grace_s: float, stuck_after_s: float, limit: int
) -> list[Delivery]:
    """Deliveries whose next attempt is due and was not published yet (or was lost: published more
    than ``stuck_after_s`` ago), with no attempt under way. A new delivery is due ``grace_s`` after it
    was planned (the worker publishes it at once; this catches a publish that never happened)."""
    query = (
        select(Delivery)
        .where(
            Delivery.status.in_(("pending", "retrying")),
            or_(Delivery.leased_until.is_(None), Delivery.leased_until < now),
            or_(
                Delivery.next_attempt_at <= now,
                Delivery.next_attempt_at.is_(None) & (Delivery.created_at < now - dt.timedelta(seconds=grace_s)),
            ),
            or_(
                Delivery.enqueued_at.is_(None),
                Delivery.enqueued_at < func.coalesce(Delivery.next_attempt_at, Delivery.created_at),
                Delivery.enqueued_at < now - dt.timedelta(seconds=stuck_after_s),
            ),
        )
        .order_by(func.coalesce(Delivery.next_attempt_at, Delivery.created_at))
        .limit(limit)
    )
    return list(session.scalars(query))


def mark_deliveries_enqueued(session: Session, delivery_ids: list[str], *, at: dt.datetime | None = None) -> None:
    """Record that a labelwise.deliver message for each was published (to run at ``at``, default now)."""
    if delivery_ids:
        session.execute(update(Delivery).where(Delivery.id.in_(delivery_ids)).values(enqueued_at=at or utcnow()))


def lock_delivery(session: Session, delivery_id: str) -> Delivery:
    """The delivery, locked until the transaction ends (PostgreSQL); raises NotFoundError."""
    row = session.scalar(select(Delivery).where(Delivery.id == delivery_id).with_for_update())
    if row is None:
        raise NotFoundError(f"unknown delivery {delivery_id!r}")
    return row


def get_delivery(session: Session, delivery_id: str, *, tenant_id: int | None = None) -> Delivery:
    row = session.get(Delivery, delivery_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFoundError(f"unknown delivery {delivery_id!r}")
    return row


def deliveries_of_job(session: Session, job_id: str) -> list[Delivery]:
    return list(session.scalars(select(Delivery).where(Delivery.job_id == job_id).order_by(Delivery.created_at)))


def list_deliveries(
    session: Session, *, tenant_id: int | None = None, status: str | None = None, limit: int = 100
) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.created_at.desc()).limit(limit)
    if tenant_id is not None:
        query = query.where(Delivery.tenant_id == tenant_id)
    if status:
        query = query.where(Delivery.status == status)
    return list(session.scalars(query))


def remember_event(session: Session, *, integration_id: int, event_id: str) -> InboundEvent:
    """Record an inbound event id (flushes: a repeat raises IntegrityError here)."""
    row = InboundEvent(integration_id=integration_id, event_id=event_id)
    session.add(row)
    session.flush()
    return row


def event_seen(session: Session, *, integration_id: int, event_id: str) -> bool:
    """Whether an inbound event id is already recorded."""
    query = select(InboundEvent.id).where(
        InboundEvent.integration_id == integration_id, InboundEvent.event_id == event_id
    )
    return session.scalar(query) is not None


def forget_event(session: Session, *, integration_id: int, event_id: str) -> None:
    row = session.scalar(
        select(InboundEvent).where(InboundEvent.integration_id == integration_id, InboundEvent.event_id == event_id)
    )
    if row is not None:
        session.delete(row)


def count_open_deliveries_by_status(session: Session) -> dict[str, int]:
    """Deliveries pending and retrying (the partial index ix_deliveries_open)."""
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.status.in_(("pending", "retrying")))
        .group_by(Delivery.status)
    )
    return {status: int(n) for status, n in rows}


def count_deliveries_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
    return {status: int(n) for status, n in rows}
