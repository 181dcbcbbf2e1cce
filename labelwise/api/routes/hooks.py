"""Inbound platform webhooks. The signature is checked before the body is parsed; nothing is enqueued
for a bad signature (401), a stale timestamp (401), an unknown integration (404), a body over
``max_hook_body_bytes`` (413) or a malformed body (400)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from labelwise import pipeline
from labelwise.api.deps import State, state
from labelwise.api.errors import error_json, responses
from labelwise.api.schemas import HookAnswer
from labelwise.errors import InvalidInputError
from labelwise.integrations.guard import make_client
from labelwise.worker.app import enqueue_job

router = APIRouter(prefix="/hooks", tags=["inbound hooks"])
IntegrationId = Annotated[str, Path(pattern=r"^int_[A-Za-z0-9_-]{1,60}$", description="The integration's public id.")]
DOC = {"model": HookAnswer, "description": "Accepted (or answered, ignored, or a duplicate)."}
ERRORS = responses(401, 404, 413, 503)
ERRORS[400] = {"model": ERRORS[401]["model"], "description": "Malformed event."}


async def _receive(request: Request, st: State, *, kind: str, public_id: str | None) -> JSONResponse:
    body = await request.body()  # the app's BodyLimit already stopped reading past max_body_bytes
    if len(body) > st.settings.max_hook_body_bytes:
        return error_json(413, "body_too_large", f"webhook body over {st.settings.max_hook_body_bytes} bytes")
    headers = {k: v for k, v in request.headers.items()}
    queue = st.settings.queue
    try:
        answer: dict[str, Any] = await run_in_threadpool(
            pipeline.receive_event,
            st.sessions,
            st.box,
            kind=kind,
            public_id=public_id,
            headers=headers,
            body=body,
            now_s=time.time(),
            tolerance_s=st.settings.inbound_tolerance_s,
            max_text_chars=st.settings.max_text_chars,
            publish=lambda job: enqueue_job(st.celery, job, queue=queue),
            http=lambda: make_client(allow=st.settings.outbound_allow, timeout_s=st.settings.outbound_timeout_s),
        )
    except InvalidInputError as e:  # for a platform, a body it sent that we cannot use is a 400
        return error_json(400, "bad_request", e.message)
    return JSONResponse(answer)


@router.post("/slack/events", responses={200: DOC, **ERRORS}, summary="Slack Events API")
async def slack_events(
    request: Request,
    integration: str | None = Query(
        None,
        pattern=r"^int_[A-Za-z0-9_-]{1,60}$",
        description="The integration's id. Without it the event is routed by its `api_app_id` and `team_id` "
        "to the one integration whose settings name both, and checked with that integration's secret only.",
    ),
    st: State = Depends(state),
) -> JSONResponse:
    """Answers `url_verification`; classifies new messages (not bot messages, edits or our own) and
    replies in their thread. Slack's retries of one `event_id` start one job."""
    return await _receive(request, st, kind="slack", public_id=integration)


@router.post("/zendesk/{integration_id}", responses={200: DOC, **ERRORS}, summary="Zendesk ticket webhook")
async def zendesk_hook(request: Request, integration_id: IntegrationId, st: State = Depends(state)) -> JSONResponse:
    """A new ticket (`{"ticket": {"id", "subject", "description"}}`) is classified; tags go back to it."""
    return await _receive(request, st, kind="zendesk", public_id=integration_id)


@router.post("/jira/{integration_id}", responses={200: DOC, **ERRORS}, summary="Jira issue webhook")
async def jira_hook(request: Request, integration_id: IntegrationId, st: State = Depends(state)) -> JSONResponse:
    """`jira:issue_created` is classified on summary + description; labels go back to the issue."""
    return await _receive(request, st, kind="jira", public_id=integration_id)


@router.post("/github/{integration_id}", responses={200: DOC, **ERRORS}, summary="GitHub issues webhook")
async def github_hook(request: Request, integration_id: IntegrationId, st: State = Depends(state)) -> JSONResponse:
    """`issues` events (`opened`, `edited` title or body) are classified on title + body; labels are added
    to the issue (and, with `comment`, a comment quotes the evidence). `X-Hub-Signature-256` is checked
    before the body is parsed; a redelivery (same `X-GitHub-Delivery`) starts no second job; `ping` is
    answered."""
    return await _receive(request, st, kind="github", public_id=integration_id)


@router.post("/confluence/{integration_id}", responses={200: DOC, **ERRORS}, summary="Confluence page webhook")
async def confluence_hook(request: Request, integration_id: IntegrationId, st: State = Depends(state)) -> JSONResponse:
    """`page_created` / `page_updated`: the page is fetched from the REST API (storage format as plain text),
    classified as a long document, and labels are added to it. Events are deduplicated by page and
    version, so our own label edits (which keep the version) never start another round; 503 when
    Confluence did not answer the fetch (its retry is then classified)."""
    return await _receive(request, st, kind="confluence", public_id=integration_id)
