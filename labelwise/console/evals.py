"""Evaluate: upload labelled messages; the worker scores them with the draft and the current version."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile  # what request.form() gives (fastapi.UploadFile subclasses it)

from labelwise.api.deps import State, state
from labelwise.console import forms
from labelwise.console.web import admin, checked, redirect, render
from labelwise.errors import BrokerUnavailableError, InvalidDocumentError, InvalidInputError
from labelwise.pipeline import consoling, evaluating
from labelwise.pipeline.consoling import Admin
from labelwise.worker.previews import enqueue_evaluation

router = APIRouter(prefix="/console", include_in_schema=False)
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
EvaluationId = Annotated[str, Path(pattern=r"^ev_[0-9a-f]{32}$")]


def _page(request: Request, st: State, who: Admin, name: str, status: int = 200, **extra: Any) -> HTMLResponse:
    with st.sessions() as session:
        state_ = consoling.editor_state(session, tenant_id=who.tenant_id, name=name)
        past = evaluating.list_evaluations(session, tenant_id=who.tenant_id, label_set=name)
    context = {"who": who, "nav": "sets", "title": f"Evaluate {name}", "name": name, "past": past, "error": None}
    return render(request, "evaluate.html", status, has_draft=state_["has_draft"], **{**context, **extra})


@router.get("/sets/{name}/evaluate", response_class=HTMLResponse)
def evaluate_page(
    request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(admin)
) -> HTMLResponse:
    """The upload form and the set's past evaluations."""
    return _page(request, st, who, name)


@router.post("/sets/{name}/evaluate", response_class=HTMLResponse)
async def start(request: Request, name: Name, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    """Score an uploaded CSV (``text,label``) or JSONL file with the draft and the current version."""
    form = await request.form()
    upload = form.get("file")
    data = await upload.read(st.settings.max_body_bytes + 1) if isinstance(upload, UploadFile) else b""
    filename = upload.filename or "upload" if isinstance(upload, UploadFile) else "upload"
    await form.close()  # the upload's temporary file

    def record() -> str:
        rows = evaluating.parse_labelled(data, filename)
        with st.sessions.begin() as session:
            state_ = consoling.editor_state(session, tenant_id=who.tenant_id, name=name)
            draft = (
                forms.to_document(state_["draft"], max_labels=st.settings.max_labels) if state_["has_draft"] else None
            )
            return evaluating.request_evaluation(
                session, tenant_id=who.tenant_id, label_set=name, document=draft, rows=rows,
                max_rows=st.settings.eval_max_rows, max_text_chars=st.settings.max_text_chars,
            ).id  # fmt: skip

    try:
        if not data.strip():
            raise InvalidInputError("choose a CSV or JSONL file of labelled messages", field="file")
        evaluation_id = await run_in_threadpool(record)
    except InvalidInputError as e:  # the file, its rows, or the draft (InvalidDocumentError)
        message = f"The draft is invalid: {e.message}" if isinstance(e, InvalidDocumentError) else e.message
        return await run_in_threadpool(lambda: _page(request, st, who, name, 422, error=message))
    try:
        await run_in_threadpool(enqueue_evaluation, st.celery, evaluation_id, queue=st.settings.queue)
    except Exception as e:
        raise BrokerUnavailableError(f"could not enqueue the evaluation ({type(e).__name__})") from e
    return redirect(f"/console/evaluations/{evaluation_id}")


def _evaluation(st: State, who: Admin, evaluation_id: str) -> dict[str, Any]:
    with st.sessions() as session:
        return evaluating.read_evaluation(session, tenant_id=who.tenant_id, evaluation_id=evaluation_id)


@router.get("/evaluations/{evaluation_id}", response_class=HTMLResponse)
def evaluation(
    request: Request, evaluation_id: EvaluationId, st: State = Depends(state), who: Admin = Depends(admin)
) -> HTMLResponse:
    """Progress while the worker scores, then both sides' figures, tables and pictures."""
    ev = _evaluation(st, who, evaluation_id)
    return render(request, "evaluation.html", who=who, nav="sets", title=f"Evaluation of {ev['label_set']}", ev=ev)


@router.get("/evaluations/{evaluation_id}/progress", response_class=HTMLResponse)
def progress(
    request: Request, evaluation_id: EvaluationId, st: State = Depends(state), who: Admin = Depends(admin)
) -> Response:
    """The progress bar (htmx polls it every second); the finished page once done."""
    ev = _evaluation(st, who, evaluation_id)
    if ev["status"] in ("done", "failed"):
        return Response(status_code=200, headers={"HX-Redirect": f"/console/evaluations/{evaluation_id}"})
    return render(request, "_eval_progress.html", who=who, ev=ev)


@router.get("/evaluations/{evaluation_id}/{side}.png")
def figure(
    evaluation_id: EvaluationId,
    side: Literal["draft", "current"],
    st: State = Depends(state),
    who: Admin = Depends(admin),
) -> Response:
    """The figure ``labelwise eval --plot`` draws: threshold sweep and confusion heat map."""
    with st.sessions() as session:
        data = evaluating.evaluation_figure(session, tenant_id=who.tenant_id, evaluation_id=evaluation_id, side=side)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/evaluations", include_in_schema=False)
def _no_index() -> Response:
    return redirect("/console/sets")
