"""Integrations: a tenant's named connections to Slack, Jira, Zendesk and webhook endpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from labelwise import pipeline
from labelwise.api.deps import Caller, State, caller, state
from labelwise.api.errors import responses
from labelwise.api.schemas import IntegrationIn, IntegrationOut

router = APIRouter(prefix="/v1/integrations", tags=["integrations"])
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Integration name.")]


@router.get("", response_model=list[IntegrationOut], responses=responses(401, 429), summary="List integrations")
def list_integrations(st: State = Depends(state), who: Caller = Depends(caller)) -> list[dict[str, Any]]:
    with st.sessions() as session:
        return pipeline.list_integrations(session, st.box, tenant_id=who.tenant_id)


@router.put(
    "/{name}",
    status_code=201,
    response_model=IntegrationOut,
    responses={200: {"model": IntegrationOut, "description": "Updated."}, **responses(401, 413, 422, 429)},
    summary="Create or update an integration",
)
def put_integration(
    name: Name, body: IntegrationIn, response: Response, st: State = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """Secrets are encrypted at rest and never returned; omit `secrets` to keep the stored ones."""
    with st.sessions.begin() as session:
        view, created = pipeline.apply_integration(
            session, st.box, tenant_id=who.tenant_id, data={"name": name, **body.model_dump(exclude_none=True)}
        )
    response.status_code = 201 if created else 200
    return view


@router.get(
    "/{name}",
    response_model=IntegrationOut,
    responses=responses(401, 404, 422, 429),
    summary="Read an integration (without secret values)",
)
def get_integration(name: Name, st: State = Depends(state), who: Caller = Depends(caller)) -> dict[str, Any]:
    with st.sessions() as session:
        return pipeline.get_integration(session, st.box, tenant_id=who.tenant_id, name=name)


@router.delete("/{name}", status_code=204, responses=responses(401, 404, 422, 429), summary="Delete an integration")
def delete_integration(name: Name, st: State = Depends(state), who: Caller = Depends(caller)) -> Response:
    with st.sessions.begin() as session:
        pipeline.delete_integration(session, tenant_id=who.tenant_id, name=name)
    return Response(status_code=204)
