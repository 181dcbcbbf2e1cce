"""Recent messages (filter, correct, turn into examples) and integrations (deliveries, replay)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from labelwise.api.deps import State, state
from labelwise.console.web import admin, checked, redirect, render
from labelwise.errors import InvalidInputError
from labelwise.pipeline import activity, record_feedback
from labelwise.pipeline.consoling import Admin
from labelwise.worker.app import enqueue_delivery

log = logging.getLogger(__name__)
router = APIRouter(prefix="/console", include_in_schema=False)
Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
JobId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/]+$")]


@router.get("/sets/{name}/messages", response_class=HTMLResponse)
def messages(
    request: Request,
    name: Name,
    label: Annotated[str | None, Query(max_length=100)] = None,
    abstained: Annotated[bool, Query()] = False,
    low_margin: Annotated[bool, Query()] = False,
    st: State = Depends(state),
    who: Admin = Depends(admin),
) -> HTMLResponse:
    """The set's newest classified messages, filterable by label, abstained and low margin."""
    with st.sessions() as session:
        data = activity.recent_messages(
            session, tenant_id=who.tenant_id, name=name, label=label or None, abstained=abstained, low_margin=low_margin
        )
    return render(request, "messages.html", who=who, nav="sets", title=f"Messages of {name}", name=name, data=data,
                  label=label or "", abstained=abstained, low_margin=low_margin)  # fmt: skip


async def _label(request: Request) -> str:
    label = (await request.form()).get("label")
    if not isinstance(label, str) or not label:
        raise InvalidInputError("choose a label", field="label")
    return label


@router.post("/jobs/{job_id}/feedback")
async def correct(
    request: Request, job_id: JobId, st: State = Depends(state), who: Admin = Depends(checked)
) -> Response:
    """The existing feedback: the right label; the text becomes its example in the set's next version."""
    label = await _label(request)

    def store() -> str:
        with st.sessions.begin() as session:
            return str(
                record_feedback(session, tenant_id=who.tenant_id, job_id=job_id, label=label, created_by=who.who)[
                    "label_set"
                ]
            )

    name = await run_in_threadpool(store)
    return redirect(f"/console/sets/{name}/messages#job-{job_id}")


@router.post("/jobs/{job_id}/to-draft")
async def to_draft(
    request: Request, job_id: JobId, st: State = Depends(state), who: Admin = Depends(checked)
) -> Response:
    """The message's text becomes an example of a label in the set's draft (nothing is saved yet)."""
    label = await _label(request)

    def store() -> str:
        with st.sessions.begin() as session:
            return activity.example_to_draft(session, tenant_id=who.tenant_id, job_id=job_id, label=label)

    name = await run_in_threadpool(store)
    return redirect(f"/console/sets/{name}?saved=example")


@router.get("/integrations", response_class=HTMLResponse)
def integrations(request: Request, st: State = Depends(state), who: Admin = Depends(admin)) -> HTMLResponse:
    """Every integration: deliveries per status in the last 24 h, the last error, dead deliveries."""
    with st.sessions() as session:
        rows = activity.integrations_overview(session, tenant_id=who.tenant_id)
    return render(request, "integrations.html", who=who, nav="integrations", title="Integrations", rows=rows)


@router.post("/deliveries/replay")
async def replay(request: Request, st: State = Depends(state), who: Admin = Depends(checked)) -> Response:
    """Send the chosen dead deliveries again (same delivery id, fresh attempts)."""
    ids = [x for x in (await request.form()).getlist("id") if isinstance(x, str) and x]
    if not ids:
        raise InvalidInputError("choose a delivery", field="id")

    def store() -> list[str]:
        with st.sessions.begin() as session:
            return activity.replay(session, tenant_id=who.tenant_id, ids=ids)

    for delivery_id in await run_in_threadpool(store):  # after the commit
        await run_in_threadpool(enqueue_delivery, st.celery, delivery_id, queue=st.settings.queue)
    return redirect("/console/integrations")
