"""Tenants and tokens: only hashes stored, revoke takes effect at once."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labelwise.errors import ConflictError
from labelwise.models import tenants
from labelwise.models.tables import ApiToken


def test_token_is_stored_only_as_a_hash_and_resolves_its_tenant(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        _, token = tenants.create_token(s, tenant_id=t.id)
    assert token.startswith("lw_") and len(token) > 40
    with sessions() as s:
        stored = s.scalars(select(ApiToken)).all()
        assert all(token not in (row.token_hash, row.prefix) for row in stored)
        assert tenants.tenant_for_token(s, token).name == "acme"
        assert tenants.tenant_for_token(s, token + "x") is None


def test_revoke_by_prefix(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        t = tenants.create_tenant(s, "acme")
        _, keep = tenants.create_token(s, tenant_id=t.id)
        _, drop = tenants.create_token(s, tenant_id=t.id)
        assert tenants.revoke_token(s, tenant_id=t.id, token_or_prefix=drop[:10]) == 1
        assert tenants.tenant_for_token(s, drop) is None and tenants.tenant_for_token(s, keep) is not None


def test_duplicate_tenant_is_a_conflict(sessions) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        tenants.create_tenant(s, "acme")
        with pytest.raises(ConflictError):
            tenants.create_tenant(s, "acme")
