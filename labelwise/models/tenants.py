"""Tenants and their API tokens (only a SHA-256 hash of a token is stored)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from labelwise.errors import ConflictError, NotFoundError
from labelwise.models.tables import ApiToken, Tenant, utcnow

TOKEN_PREFIX = "lw_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_tenant(session: Session, name: str) -> Tenant:
    """The tenant called ``name``; raises NotFoundError."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFoundError(f"unknown tenant {name!r}")
    return tenant


def get_tenant_by_id(session: Session, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFoundError(f"unknown tenant id {tenant_id}")
    return tenant


def find_tenant(session: Session, name: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.name == name))


def create_tenant(session: Session, name: str) -> Tenant:
    """A new tenant; raises ConflictError when the name is taken."""
    if find_tenant(session, name) is not None:
        raise ConflictError(f"tenant {name!r} already exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.name)))


def create_token(session: Session, *, tenant_id: int) -> tuple[ApiToken, str]:
    """A new API token for the tenant; returns the row and the token text (shown once, never stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(tenant_id=tenant_id, prefix=token[:10], token_hash=hash_token(token))
    session.add(row)
    session.flush()
    return row, token


def tenant_for_token(session: Session, token: str) -> Tenant | None:
    """The tenant owning an unrevoked token, or None."""
    return session.scalar(
        select(Tenant)
        .join(ApiToken, ApiToken.tenant_id == Tenant.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    )


def revoke_token(session: Session, *, tenant_id: int, token_or_prefix: str) -> int:
    """Revoke the tenant's live token given whole or by its 10-character prefix; returns how many."""
    match = (
        ApiToken.prefix == token_or_prefix
        if len(token_or_prefix) <= len(TOKEN_PREFIX) + 7
        else ApiToken.token_hash == hash_token(token_or_prefix)
    )
    rows = list(
        session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_id, ApiToken.revoked_at.is_(None), match))
    )
    for row in rows:
        row.revoked_at = utcnow()
    return len(rows)


def list_tokens(session: Session, *, tenant_id: int) -> list[ApiToken]:
    """The tenant's tokens (prefix, creation and revocation times; the secret part is never stored), oldest first."""
    return list(session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant_id).order_by(ApiToken.id)))
