"""The caller's own tenant: its retention and privacy mode."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from labelwise.api.deps import Caller, State, caller, state
from labelwise.api.errors import responses
from labelwise.api.routes.admin import changes_of
from labelwise.api.schemas import TenantDataIn, TenantDataOut
from labelwise.models import tenants
from labelwise.pipeline import lifecycle

router = APIRouter(prefix="/v1/tenant", tags=["tenant"])


@router.get("/data", response_model=TenantDataOut, responses=responses(401, 429), summary="Your retention and privacy")
def get_data(st: State = Depends(state), who: Caller = Depends(caller)) -> dict[str, Any]:
    with st.sessions() as session:
        tenant = tenants.get_tenant_by_id(session, who.tenant_id)
        return lifecycle.data_settings(tenant, default_days=st.settings.retention_days)


@router.patch(
    "/data", response_model=TenantDataOut, responses=responses(401, 422, 429), summary="Set your retention and privacy"
)
def patch_data(body: TenantDataIn, st: State = Depends(state), who: Caller = Depends(caller)) -> dict[str, Any]:
    """`retention_days`: days a job keeps its text and metadata (null: the installation's default);
    `privacy: true`: the text of new messages is never written to the database (results still are; a
    correction through `POST /v1/jobs/{id}/feedback` then carries the text). A field left out is kept."""
    with st.sessions.begin() as session:
        return lifecycle.set_data_settings(
            session, who.tenant, default_days=st.settings.retention_days, **changes_of(body)
        )
