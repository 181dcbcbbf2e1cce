"""Label sets: versioned documents a tenant admin edits; the next message uses the new version."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Response

from labelwise import pipeline
from labelwise.api.deps import Caller, State, caller, state
from labelwise.api.errors import responses
from labelwise.api.schemas import LabelSetIn, LabelSetSummary, RollbackIn, VersionOut
from labelwise.errors import InvalidDocumentError, InvalidInputError
from labelwise.labelset import document_limits, parse_document

router = APIRouter(prefix="/v1/label-sets", tags=["label sets"])
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Label-set name.")]


@router.get("", response_model=list[LabelSetSummary], responses=responses(401, 429), summary="List label sets")
def list_label_sets(st: State = Depends(state), who: Caller = Depends(caller)) -> list[dict[str, Any]]:
    with st.sessions() as session:
        return pipeline.label_set_summaries(session, tenant_id=who.tenant_id)


@router.put(
    "/{name}",
    status_code=201,
    response_model=VersionOut,
    responses={
        200: {"model": VersionOut, "description": "Unchanged document: the current version."},
        **responses(401, 409, 413, 422, 429),
    },
    summary="Create or change a label set",
)
def put_label_set(
    name: Name,
    body: LabelSetIn,
    response: Response,
    if_match: str | None = Header(
        None,
        alias="If-Match",
        max_length=40,
        description='Compare-and-set: the version this edit was made on (the `ETag` of GET, e.g. `"3"`), '
        "or `*` (the set must exist). Another current version: 409 `version_conflict`, nothing stored.",
    ),
    st: State = Depends(state),
    who: Caller = Depends(caller),
) -> dict[str, Any]:
    """A changed document becomes a new immutable version (201) that the next message uses; the same
    document again changes nothing (200). A deleted set of this name comes back. With `If-Match`, the
    edit is stored only if the set's current version is still the one named (409 otherwise), so two
    admins editing the same version never overwrite each other. The answer's `ETag` is its version."""
    expected = expected_version(if_match)
    if body.name is not None and body.name != name:
        raise InvalidDocumentError(
            f"name {body.name!r} differs from the path's {name!r}",
            errors=[{"field": "body.name", "message": "must equal the name in the path"}],
        )
    try:
        doc = parse_document({**body.model_dump(mode="json"), "name": name}, **document_limits(st.settings))
    except InvalidDocumentError as e:
        fields = [{**x, "field": f"body.{x['field']}"} for x in e.errors]
        raise InvalidDocumentError(e.message, errors=fields) from e
    with st.sessions.begin() as session:
        version, created = pipeline.apply_label_set(
            session, tenant=who.tenant, doc=doc, created_by=f"api {who.token_prefix}", expected_version=expected
        )
        response.status_code = 201 if created else 200
        response.headers["ETag"] = f'"{version.version}"'
        return pipeline.label_set_version(session, tenant_id=who.tenant_id, name=name, version=version.version)


@router.get(
    "/{name}",
    response_model=VersionOut,
    responses=responses(401, 404, 422, 429),
    summary="Read a label set's current version",
)
def get_label_set(
    name: Name, response: Response, st: State = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """The current version; its number is also the `ETag` (send it back as `If-Match` with a PUT)."""
    with st.sessions() as session:
        view = pipeline.label_set_version(session, tenant_id=who.tenant_id, name=name)
    response.headers["ETag"] = f'"{view["version"]}"'
    return view


def expected_version(if_match: str | None) -> int | str | None:
    """An If-Match header as a version number, ``"*"`` or None; 422 when it is neither."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if value == "*":
        return "*"
    if value.isascii() and value.isdigit() and len(value) <= 9:
        return int(value)
    raise InvalidInputError('If-Match must be a label-set version (the ETag of GET, e.g. "3") or *', field="If-Match")


@router.delete("/{name}", status_code=204, responses=responses(401, 404, 422, 429), summary="Delete a label set")
def delete_label_set(name: Name, st: State = Depends(state), who: Caller = Depends(caller)) -> Response:
    """New messages can no longer use it; jobs keep their results and versions."""
    with st.sessions.begin() as session:
        pipeline.delete_label_set(session, tenant_id=who.tenant_id, name=name)
    return Response(status_code=204)


@router.get(
    "/{name}/versions",
    response_model=list[VersionOut],
    responses=responses(401, 404, 422, 429),
    summary="List a label set's versions",
)
def list_versions(name: Name, st: State = Depends(state), who: Caller = Depends(caller)) -> list[dict[str, Any]]:
    with st.sessions() as session:
        return pipeline.label_set_versions(session, tenant_id=who.tenant_id, name=name)


@router.get(
    "/{name}/versions/{version}",
    response_model=VersionOut,
    responses=responses(401, 404, 422, 429),
    summary="Read one version",
)
def get_version(
    name: Name,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    st: State = Depends(state),
    who: Caller = Depends(caller),
) -> dict[str, Any]:
    with st.sessions() as session:
        return pipeline.label_set_version(session, tenant_id=who.tenant_id, name=name, version=version)


@router.post(
    "/{name}/rollback",
    response_model=VersionOut,
    responses=responses(401, 404, 422, 429),
    summary="Point the set back at an older version",
)
def rollback(name: Name, body: RollbackIn, st: State = Depends(state), who: Caller = Depends(caller)) -> dict[str, Any]:
    """No new version is made; the next message uses the version given."""
    with st.sessions.begin() as session:
        return pipeline.rollback_label_set(session, tenant_id=who.tenant_id, name=name, version=body.version)
