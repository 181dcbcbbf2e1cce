"""Sign-in and the label sets: list, create, delete, versions, diff, rollback, YAML import and export."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile  # what request.form() gives (fastapi.UploadFile subclasses it)

from labelwise.api.deps import State, state
from labelwise.console.editor import _page, _state
from labelwise.console.forms import field_errors
from labelwise.console.web import COOKIE, LOGIN_COOKIE, admin, checked, login_token, redirect, render, same_origin
from labelwise.console.web import set_cookie as set_console_cookie
from labelwise.errors import ConflictError, InvalidDocumentError, InvalidInputError, UnauthorizedError
from labelwise.pipeline import consoling
from labelwise.pipeline.consoling import Admin

router = APIRouter(prefix="/console", include_in_schema=False)
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
MAX_IMPORT_BYTES = 1_048_576


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return redirect("/console/sets")


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, st: State = Depends(state)) -> Response:
    """The sign-in form (its double-submit cookie is set here)."""
    token = login_token(request)
    response = render(request, "sign_in.html", who=None, login_csrf=token, hours=st.settings.console_session_s // 3600)
    set_console_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, st: State = Depends(state)) -> Response:
    """A tenant token (in the POST body, never in a URL) makes a console session cookie."""
    same_origin(request)
    form = await request.form()
    token, sent = form.get("token"), form.get("login_csrf")
    cookie = request.cookies.get(LOGIN_COOKIE)
    hours = st.settings.console_session_s // 3600
    if not isinstance(sent, str) or not cookie or sent != cookie:
        return render(request, "sign_in.html", 403, who=None, login_csrf=login_token(request), hours=hours,
                      error="The sign-in form expired; try again.")  # fmt: skip

    def open_session() -> str:
        with st.sessions.begin() as session:
            return consoling.sign_in(session, token=str(token or ""), lifetime_s=st.settings.console_session_s)

    try:
        secret = await run_in_threadpool(open_session)
    except UnauthorizedError:
        return render(request, "sign_in.html", 401, who=None, login_csrf=cookie, hours=hours,
                      error="Unknown or revoked token.")  # fmt: skip
    response = redirect("/console/sets")
    set_console_cookie(response, request, COOKIE, secret, max_age=st.settings.console_session_s)
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    secret = request.cookies.get(COOKIE, "")

    def close() -> None:
        with st.sessions.begin() as session:
            consoling.sign_out(session, secret)

    await run_in_threadpool(close)
    response = redirect("/console/sign-in")
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


def _sets_page(request: Request, st: State, who: Admin, status: int = 200, **extra: object) -> HTMLResponse:
    with st.sessions() as session:
        sets = consoling.set_list(session, tenant_id=who.tenant_id)
    return render(request, "sets.html", status, who=who, nav="sets", title="Label sets", sets=sets, **extra)


@router.get("/sets", response_class=HTMLResponse)
def list_sets(request: Request, st: State = Depends(state), who: Admin = Depends(admin)) -> HTMLResponse:
    """Every set with its current version, size and messages in the last 24 h."""
    return _sets_page(request, st, who, new_name="")


@router.post("/sets", response_class=HTMLResponse)
async def create_set(request: Request, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    """Start a new set: its editor, with one empty label; saving makes version 1."""
    name = str((await request.form()).get("name") or "").strip()

    def start() -> None:
        with st.sessions.begin() as session:
            consoling.start_set(session, tenant_id=who.tenant_id, name=name)

    try:
        await run_in_threadpool(start)
    except (ConflictError, InvalidInputError) as e:
        message = e.message if isinstance(e, ConflictError) else "Use letters, digits, _ . - (up to 64 characters)."
        return await run_in_threadpool(lambda: _sets_page(request, st, who, 422, new_name=name, error=message))
    return redirect(f"/console/sets/{name}?saved=created")


@router.get("/sets/{name}/delete", response_class=HTMLResponse)
def confirm_delete(request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(admin)) -> Response:
    with st.sessions() as session:
        consoling.editor_state(session, tenant_id=who.tenant_id, name=name)  # 404 for a set the tenant lacks
    return render(request, "delete.html", who=who, nav="sets", title=f"Delete {name}", name=name)


@router.post("/sets/{name}/delete")
async def delete_set(name: Name, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    def delete() -> None:
        with st.sessions.begin() as session:
            consoling.delete_set(session, tenant_id=who.tenant_id, name=name)

    await run_in_threadpool(delete)
    return redirect("/console/sets")


@router.get("/sets/{name}/versions", response_class=HTMLResponse)
def versions(
    request: Request,
    name: Name,
    a: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    b: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    st: State = Depends(state),
    who: Admin = Depends(admin),
) -> Response:
    """The history (who, when), a diff between two versions (``a`` → ``b``), rollback buttons."""
    with st.sessions() as session:
        rows = consoling.versions(session, tenant_id=who.tenant_id, name=name)
        newest = rows[0]["version"]
        b = b or newest
        a = a or max(1, b - 1)
        diff = consoling.version_diff(session, tenant_id=who.tenant_id, name=name, old=a, new=b)
    return render(request, "versions.html", who=who, nav="sets", title=f"Versions of {name}", name=name, rows=rows,
                  a=a, b=b, changes=diff["changes"], unified=diff["unified"], draft_diff=None)  # fmt: skip


@router.post("/sets/{name}/rollback")
async def rollback(request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    """Point the set back at an older version (no new version is made)."""
    raw = str((await request.form()).get("version") or "")
    if not raw.isdigit():
        raise InvalidInputError("version must be a number", field="version")

    def go() -> None:
        with st.sessions.begin() as session:
            consoling.rollback(session, tenant_id=who.tenant_id, name=name, version=int(raw))

    await run_in_threadpool(go)
    return redirect(f"/console/sets/{name}/versions")


@router.get("/sets/{name}/export.yaml")
def export(
    name: Name,
    which: Literal["current", "draft"] = "current",
    st: State = Depends(state),
    who: Admin = Depends(admin),
) -> Response:
    """The current version or the draft as the YAML ``labelwise labels apply`` reads."""
    with st.sessions() as session:
        text = consoling.export_yaml(
            session, tenant_id=who.tenant_id, name=name, which=which, max_labels=st.settings.max_labels
        )
    disposition = f'attachment; filename="{name}{"-draft" if which == "draft" else ""}.yaml"'
    return Response(text, media_type="application/yaml", headers={"Content-Disposition": disposition})


@router.post("/sets/{name}/import", response_class=HTMLResponse)
async def import_yaml(
    request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(checked)
) -> Response:
    """A YAML document (uploaded or pasted) becomes the draft; its problems are shown by field."""
    form = await request.form()
    upload, pasted = form.get("file"), str(form.get("text") or "")
    data = await upload.read(MAX_IMPORT_BYTES + 1) if isinstance(upload, UploadFile) else b""
    await form.close()  # the upload's temporary file
    text = data.decode("utf-8", errors="replace") if data.strip() else pasted

    def store() -> None:
        with st.sessions.begin() as session:
            consoling.import_yaml(
                session, tenant_id=who.tenant_id, name=name, text=text, max_labels=st.settings.max_labels
            )

    try:
        if len(data) > MAX_IMPORT_BYTES:
            raise InvalidDocumentError(f"the file is over {MAX_IMPORT_BYTES} bytes")
        await run_in_threadpool(store)
    except InvalidDocumentError as e:
        state_ = await run_in_threadpool(_state, st, who, name)
        errors = field_errors(e)
        errors["form"] = [f"Import failed: {e.message}"]
        return _page(request, who, name, state_, errors=errors, status=422, preview_text="")
    return redirect(f"/console/sets/{name}?saved=imported")
