"""Operator routes: a tenant's deletion, export, import, retention and privacy (LABELWISE_ADMIN_TOKEN)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from labelwise.api.deps import State, operator, state
from labelwise.api.errors import responses
from labelwise.api.schemas import TenantDataIn, TenantDataOut, TenantDeleted
from labelwise.errors import InvalidInputError
from labelwise.models import tenants
from labelwise.pipeline import exporting, lifecycle

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
    deleted = lifecycle.delete_tenant(st.sessions, name)
    st.tokens.clear()  # its tokens stop here at once (other API processes: within LABELWISE_TOKEN_CACHE_S)
    return deleted


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


@router.get(
    "/tenants/{name}/export",
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "One JSON record a line, manifest first."},
        **responses(401, 404, 422),
    },
    response_class=StreamingResponse,
    summary="Export a tenant (NDJSON)",
)
def export_tenant(
    name: TenantName,
    st: State = Depends(state),
    since: dt.datetime | None = Query(None, description="Only jobs created at or after this time (ISO 8601)."),
    until: dt.datetime | None = Query(None, description="Only jobs created before this time (ISO 8601)."),
) -> StreamingResponse:
    """Label sets with every version, integrations without secrets, token prefixes, and the jobs created in
    [since, until), as the records `labelwise tenant import` reads (README "Data" describes each)."""
    with st.sessions() as session:
        tenants.get_tenant(session, name)  # 404 before the stream starts

    def lines() -> Iterator[bytes]:
        with st.sessions() as session:
            for record in exporting.export_records(session, name, since=_utc(since), until=_utc(until)):
                yield (json.dumps(record, ensure_ascii=False) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value
