"""Operator routes: a tenant's deletion, export, import, retention and privacy (LABELWISE_ADMIN_TOKEN)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from labelwise.api.deps import State, operator, state
from labelwise.api.errors import responses
from labelwise.api.schemas import TenantDataIn, TenantDataOut, TenantDeleted
from labelwise.errors import InvalidInputError
from labelwise.models import tenants
from labelwise.pipeline import lifecycle

router = APIRouter(prefix="/v1/admin", tags=["operator"], dependencies=[Depends(operator)])
TenantName = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="Tenant name.")]


@router.delete(
    "/tenants/{name}",
    response_model=TenantDeleted,
    responses=responses(401, 404, 422, 503),
    summary="Delete a tenant and every row it owns",
)
def delete_tenant(name: TenantName, st: State = Depends(state)) -> dict[str, Any]:
    """Removes the tenant's jobs, deliveries, inbound event ids, label sets with every version and their
    traffic vectors, integrations, tokens, console sessions, drafts, previews and evaluations, then the
    tenant. Irreversible; export first (`GET /v1/admin/tenants/{name}/export`) to keep a copy. Needs the
    operator token (`LABELWISE_ADMIN_TOKEN`); a tenant's own token is refused."""
    return lifecycle.delete_tenant(st.sessions, name)


def changes_of(body: TenantDataIn) -> dict[str, Any]:
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    if changes.get("privacy", True) is None:
        raise InvalidInputError("privacy is true or false", field="privacy")
    return changes


@router.get(
    "/tenants/{name}/data",
    response_model=TenantDataOut,
    responses=responses(401, 404, 422),
    summary="A tenant's retention and privacy mode",
)
def get_tenant_data(name: TenantName, st: State = Depends(state)) -> dict[str, Any]:
    with st.sessions() as session:
        return lifecycle.data_settings(tenants.get_tenant(session, name), default_days=st.settings.retention_days)


@router.patch(
    "/tenants/{name}/data",
    response_model=TenantDataOut,
    responses=responses(401, 404, 422),
    summary="Set a tenant's retention and privacy mode",
)
def patch_tenant_data(name: TenantName, body: TenantDataIn, st: State = Depends(state)) -> dict[str, Any]:
    """`retention_days: null` returns the tenant to `LABELWISE_RETENTION_DAYS`; a field left out is kept."""
    with st.sessions.begin() as session:
        return lifecycle.set_data_settings(session, name, default_days=st.settings.retention_days, **changes_of(body))
