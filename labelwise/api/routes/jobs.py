"""Jobs: enqueue, read, list, and classify synchronously."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from labelwise import pipeline
from labelwise.api import faults
from labelwise.api.deps import Caller, State, caller, state
from labelwise.api.errors import ApiError, responses
from labelwise.api.schemas import FeedbackIn, FeedbackOut, JobIn, JobOut, JobPage
from labelwise.api.waiting import TooManyWaits, classify_cap, job_polls, wait_until
from labelwise.messages import ClassifyMessage, parse_message
from labelwise.worker.app import enqueue_job

router = APIRouter(prefix="/v1", tags=["jobs"])
JobId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f/]+$", description="The job id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="The same key gives the same job; reusing it for another message is a 409.",
    ),
]


def _message(who: Caller, body: JobIn, key: str | None, st: State) -> ClassifyMessage:
    fields: dict[str, Any] = {"tenant": who.tenant, **body.model_dump(exclude_none=True), "idempotency_key": key}
    return parse_message(
        fields, max_text_chars=st.settings.max_text_chars, max_metadata_bytes=st.settings.max_metadata_bytes
    )


def _read(st: State, who: Caller, job_id: str) -> dict[str, Any]:
    with st.sessions() as session:
        return pipeline.get_job(session, tenant_id=who.tenant_id, job_id=job_id)


def _submit(who: Caller, body: JobIn, key: str | None, st: State) -> tuple[dict[str, Any], bool]:
    queue = st.settings.queue
    return pipeline.submit_and_enqueue(
        st.sessions,
        _message(who, body, key, st),
        publish=lambda job: enqueue_job(st.celery, job, queue=queue),
        before_publish=faults.before_publish(st.settings),
    )


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "A repeated Idempotency-Key: the existing job."},
        **responses(401, 404, 409, 413, 422, 429, 503),
    },
    summary="Enqueue a message for classification",
)
def create_job(
    body: JobIn,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    st: State = Depends(state),
    who: Caller = Depends(caller),
) -> dict[str, Any]:
    """Create a job and put it on the queue; a worker classifies it. Poll `GET /v1/jobs/{id}` for the
    result. 404 when the label set does not exist; 409 when the Idempotency-Key was used for another
    message."""
    view, created = _submit(who, body, idempotency_key, st)
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{view['job_id']}"
    return view


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses=responses(401, 404, 422, 429),
    summary="Read a job and its result",
)
def read_job(job_id: JobId, st: State = Depends(state), who: Caller = Depends(caller)) -> dict[str, Any]:
    """The job in the result shape, whatever its status."""
    with st.sessions() as session:
        return pipeline.get_job(session, tenant_id=who.tenant_id, job_id=job_id)


@router.post(
    "/jobs/{job_id}/feedback",
    response_model=FeedbackOut,
    responses=responses(401, 404, 409, 413, 422, 429),
    summary="Say which label was right",
)
def feedback(
    job_id: JobId, body: FeedbackIn, st: State = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """Stores the correction and adds the job's text to that label's examples in a new version of the label
    set, which the next message uses. 409 unless the job is done, or when the job no longer keeps its text
    (retention, privacy mode) and the body has no `text`; 422 for a label not in the set."""
    with st.sessions.begin() as session:
        return pipeline.record_feedback(
            session,
            tenant_id=who.tenant_id,
            job_id=job_id,
            label=body.label,
            text=body.text,
            created_by=f"api {who.token_prefix}",
        )


@router.get("/jobs", response_model=JobPage, responses=responses(401, 422, 429), summary="List jobs")
def list_jobs(
    status: Literal["queued", "running", "done", "failed"] | None = Query(
        None, description="Only jobs in this status."
    ),
    label_set: str | None = Query(None, max_length=64, pattern=r"^[^\x00]*$", description="Only this label set."),
    limit: int = Query(50, ge=1, le=1000, description="Page size."),
    cursor: str | None = Query(None, max_length=500, description="`next_cursor` of the previous page."),
    st: State = Depends(state),
    who: Caller = Depends(caller),
) -> dict[str, Any]:
    """The tenant's jobs, newest first, a page at a time. A page also ends before it passes
    `LABELWISE_MAX_PAGE_BYTES` of JSON (at least one job); `next_cursor` continues from there."""
    with st.sessions() as session:
        views, next_cursor = pipeline.list_jobs(
            session,
            tenant_id=who.tenant_id,
            status=status,
            label_set=label_set,
            limit=limit,
            cursor=cursor,
            max_bytes=st.settings.max_page_bytes,
        )
    return {"jobs": views, "next_cursor": next_cursor}


@router.post(
    "/classify",
    response_model=JobOut,
    responses={
        202: {"model": JobOut, "description": "The worker did not finish in time; poll `Location`."},
        **responses(401, 404, 409, 413, 422, 429, 503),
    },
    summary="Classify a message and wait for the result",
)
async def classify(
    body: JobIn,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
    st: State = Depends(state),
    who: Caller = Depends(caller),
) -> dict[str, Any]:
    """For previews and small volumes. The message goes through the same queue and worker as
    `POST /v1/jobs` (the API process holds no model), and the answer waits up to
    `LABELWISE_SYNC_TIMEOUT_S` (default 10 s) for the result, without holding a thread. Slower: 202
    with the job to poll. 429 (with `Retry-After`) when the tenant already has
    `LABELWISE_SYNC_MAX_WAITS` calls waiting in this API process."""
    try:
        with classify_cap(request.app).hold(who.tenant_id):
            view, _ = await run_in_threadpool(_submit, who, body, idempotency_key, st)
            job_id = view["job_id"]
            if view["status"] not in ("done", "failed"):
                polls = job_polls(request.app)
                with polls.watching(job_id):
                    finished = functools.partial(polls.finished, job_id)
                    await wait_until(finished, timeout_s=st.settings.sync_timeout_s, poll_s=0.01, max_poll_s=0.2)
                view = await run_in_threadpool(_read, st, who, job_id)
    except TooManyWaits as e:
        raise ApiError(429, "rate_limited", e.message, {"Retry-After": "1"}) from e
    if view["status"] not in ("done", "failed"):
        response.status_code = 202
        response.headers["Location"] = f"/v1/jobs/{view['job_id']}"
    return view
