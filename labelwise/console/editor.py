"""The label-set editor: the draft as a form, its live preview through the worker, save and discard."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from labelwise.api.deps import State, state
from labelwise.api.waiting import TooManyWaits, preview_and_wait, preview_cap
from labelwise.console import forms
from labelwise.console.web import admin, checked, redirect, render
from labelwise.errors import InvalidDocumentError, LabelwiseError
from labelwise.pipeline import consoling
from labelwise.pipeline.consoling import Admin

router = APIRouter(prefix="/console/sets", include_in_schema=False)
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
NOTICES = {
    "saved": "Saved version {v}.",
    "unchanged": "Nothing changed: version {v} is still current.",
    "created": "Created. Add labels, then save to make version 1.",
    "imported": "Imported into the draft. Save to make it the next version.",
    "discarded": "Draft discarded.",
    "example": "Added the message as an example to the draft.",
}


def notice(key: str | None, v: int | None = None) -> str | None:
    return NOTICES[key].format(v=v) if key in NOTICES else None


def slots(draft: dict[str, Any]) -> list[str]:
    """Every error slot the editor form has (the preview clears or fills each of them)."""
    out = ["form", "threshold", "fallback", "margin", "refine_from_traffic", "multi_label"]
    for i in range(len(draft["labels"])):
        out += [f"labels.{i}.{f}" for f in ("name", "description", "examples", "threshold")]
    return out


def _state(st: State, who: Admin, name: str) -> dict[str, Any]:
    with st.sessions() as session:
        out = consoling.editor_state(session, tenant_id=who.tenant_id, name=name)
        out["draft_diff"] = consoling.draft_diff(
            session, tenant_id=who.tenant_id, name=name, max_labels=st.settings.max_labels
        )
    return out


def _page(
    request: Request, who: Admin, name: str, data: dict[str, Any], status: int = 200, **extra: Any
) -> HTMLResponse:
    context = {"who": who, "nav": "sets", "name": name, "title": f"Edit {name}", "errors": {}, "preview": None}
    return render(request, "editor.html", status, **{**context, **data, **extra})


@router.get("/{name}", response_class=HTMLResponse)
def edit(
    request: Request,
    name: Name,
    saved: Annotated[str | None, Query(max_length=20)] = None,
    v: Annotated[int | None, Query(ge=1)] = None,
    st: State = Depends(state),
    who: Admin = Depends(admin),
) -> HTMLResponse:
    """The editor: the draft (or the current version) as a form, beside the live preview."""
    return _page(request, who, name, _state(st, who, name), notice=notice(saved, v))


async def _draft_from(request: Request, st: State, who: Admin, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The posted form as a draft (stored), and the editor's state before it."""
    form = await request.form()
    before = await run_in_threadpool(_state, st, who, name)
    draft = forms.from_form(form, name=name, calibration=before["draft"].get("calibration"))
    action = form.get("action")
    focus = None
    if isinstance(action, str):
        draft, focus = forms.apply_action(draft, action)
    await run_in_threadpool(_put, st, who, name, draft)
    return draft, {**before, "focus": focus, "preview_text": forms.text_of(form.get("preview_text"))}


def _put(st: State, who: Admin, name: str, draft: dict[str, Any]) -> None:
    with st.sessions.begin() as session:
        consoling.put_draft(session, tenant_id=who.tenant_id, name=name, draft=draft)


@router.post("/{name}/draft", response_class=HTMLResponse)
async def update_draft(
    request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(checked)
) -> Response:
    """Keep the form as the draft after an editor button (add, remove, move a label)."""
    draft, before = await _draft_from(request, st, who, name)
    if not request.headers.get("hx-request"):
        return redirect(f"/console/sets/{name}")
    after = await run_in_threadpool(_state, st, who, name)
    return render(request, "_editor_form.html", who=who, name=name, errors={}, **{**after, "focus": before["focus"]})


@router.post("/{name}/preview", response_class=HTMLResponse)
async def preview(request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    """Keep the form as the draft and score the preview text with it, beside the current version."""
    draft, before = await _draft_from(request, st, who, name)
    context: dict[str, Any] = {"oob": True, "slots": slots(draft), "errors": {}, "preview": None}
    try:
        doc = forms.to_document(draft, max_labels=st.settings.max_labels)
    except InvalidDocumentError as e:
        context["errors"] = forms.field_errors(e)
        context["preview_error"] = "Fix the marked fields to see the draft's scores."
        return render(request, "_preview.html", **context)
    text = before["preview_text"]
    if text.strip():
        label_set = name if before["current_version"] is not None else None
        try:
            context["preview"] = await preview_and_wait(
                st, preview_cap(request.app), tenant_id=who.tenant_id, document=doc, label_set=label_set, texts=[text]
            )
        except TooManyWaits:
            context["preview_error"] = "Several previews are already waiting for the worker; type on and try again."
        except LabelwiseError as e:
            context["preview_error"] = e.message
        else:
            if context["preview"]["status"] != "done":
                context["preview_error"] = (
                    context["preview"]["error"] or "The worker has not answered yet. Is it running?"
                )
    return render(request, "_preview.html", **context)


@router.post("/{name}/save", response_class=HTMLResponse)
async def save(request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    """The form becomes the next version (nothing happens when it is unchanged); errors at their fields."""
    draft, before = await _draft_from(request, st, who, name)

    def store() -> tuple[int, bool]:
        with st.sessions.begin() as session:
            return consoling.save_draft(
                session, tenant_id=who.tenant_id, name=name, created_by=who.who, max_labels=st.settings.max_labels
            )

    try:
        version, created = await run_in_threadpool(store)
    except InvalidDocumentError as e:
        data = await run_in_threadpool(_state, st, who, name)
        return _page(
            request, who, name, data, errors=forms.field_errors(e), status=422, preview_text=before["preview_text"]
        )
    return redirect(f"/console/sets/{name}?saved={'saved' if created else 'unchanged'}&v={version}")


@router.post("/{name}/discard")
async def discard(name: Name, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    def drop() -> bool:
        with st.sessions.begin() as session:
            return consoling.discard_draft(session, tenant_id=who.tenant_id, name=name)

    saved = await run_in_threadpool(drop)
    return redirect(f"/console/sets/{name}?saved=discarded" if saved else "/console/sets")
