"""Previews and evaluations: classify texts against an inline, unsaved label-set document through the
worker (the API process holds no model), beside the set's current version."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from labelwise.api.deps import Caller, State, caller, state
from labelwise.api.errors import ApiError, responses
from labelwise.api.schemas import Evidence, LabelScore, LabelSetIn, SetName
from labelwise.api.waiting import TooManyWaits, preview_and_wait, preview_cap
from labelwise.errors import BrokerUnavailableError, InvalidDocumentError
from labelwise.evaluate import Row
from labelwise.labelset import LabelSetDocument, document_limits, parse_document
from labelwise.pipeline import evaluating, previewing
from labelwise.worker.previews import enqueue_evaluation

router = APIRouter(prefix="/v1", tags=["previews"])
PreviewId = Annotated[str, Path(pattern=r"^pv_[0-9a-f]{32}$", description="The preview id.")]
EvaluationId = Annotated[str, Path(pattern=r"^ev_[0-9a-f]{32}$", description="The evaluation id.")]
PreviewText = Annotated[str, StringConstraints(min_length=1)]


class PreviewIn(BaseModel):
    """Texts to score against a draft document, a stored set's current version, or both side by side."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "label_set": "support",
                    "document": {"labels": [{"name": "billing", "description": "Invoices and charges."}]},
                    "texts": ["I was charged twice"],
                }
            ]
        },
    )

    texts: Annotated[list[PreviewText], Field(min_length=1, max_length=previewing.MAX_PREVIEW_TEXTS)]
    document: LabelSetIn | None = Field(None, description="An unsaved label-set document (the draft).")
    label_set: SetName | None = Field(None, description="Also score with this set's current version.")


class PreviewResult(BaseModel):
    labels: list[LabelScore] = Field(description="Every label of the document with its score, best first.")
    chosen: list[str] = Field(description="Labels chosen (the fallback label when abstaining).")
    abstained: bool
    windows: int | None = Field(None, description="How many model windows read the text (1 when it fits one).")
    truncated: bool | None = Field(None, description="True when the token budget cut the text.")
    evidence: list[Evidence] = Field(
        default_factory=list, description="Per chosen label, the character span of its best window (see jobs)."
    )


class PreviewOut(BaseModel):
    preview_id: str
    status: Literal["queued", "done", "failed"] = Field(description="queued: the worker has not answered yet.")
    label_set: str | None
    model: str | None
    texts: list[str]
    draft: list[PreviewResult] | None = Field(description="One result per text, with the document; null without.")
    current: list[PreviewResult] | None = Field(description="One result per text, with the current version.")
    current_version: int | None
    error: str | None


class LabelledRow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, StringConstraints(min_length=1)]
    label: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class EvaluationIn(BaseModel):
    """Labelled messages to score with the set's current version and, given one, a draft document."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"label_set": "support", "rows": [{"text": "I was charged twice", "label": "billing"}]}]
        },
    )

    label_set: SetName
    document: LabelSetIn | None = Field(None, description="A draft to compare with the current version.")
    rows: Annotated[list[LabelledRow], Field(min_length=1)]


class EvaluationOut(BaseModel):
    evaluation_id: str
    label_set: str
    status: Literal["queued", "running", "done", "failed"]
    done: int = Field(description="Rows scored so far (each side counts).")
    total: int
    current_version: int | None
    draft: dict[str, Any] | None = Field(description="`labelwise eval --sweep --json`'s report, plus `confusion`.")
    current: dict[str, Any] | None
    error: str | None
    created_at: str
    finished_at: str | None


def _document(body: LabelSetIn | None, name: str | None, st: State) -> LabelSetDocument | None:
    if body is None:
        return None
    try:
        return parse_document({**body.model_dump(mode="json"), "name": name or "draft"}, **document_limits(st.settings))
    except InvalidDocumentError as e:
        fields = [{**x, "field": f"body.document.{x['field']}"} for x in e.errors]
        raise InvalidDocumentError(e.message, errors=fields) from e


@router.post(
    "/preview",
    response_model=PreviewOut,
    responses={
        202: {"model": PreviewOut, "description": "The worker did not answer in time; poll `Location`."},
        **responses(401, 404, 413, 422, 429, 503),
    },
    summary="Preview a draft label set on a few texts",
)
async def preview(
    body: PreviewIn, request: Request, response: Response, st: State = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """Scores up to 20 texts with every label of `document` (an unsaved draft) and/or of `label_set`'s
    current version, through the worker, the same code as production messages (the set's current
    version with its traffic-refined vectors, as a message gets it). Nothing is stored as a job. Waits
    up to `LABELWISE_PREVIEW_TIMEOUT_S` (10 s) without holding a thread; slower: 202 and `Location`.
    404 for an unknown `label_set`; 429 when the tenant already has `LABELWISE_PREVIEW_MAX_WAITS`
    previews waiting."""
    doc = _document(body.document, body.label_set, st)
    try:
        view = await preview_and_wait(
            st,
            preview_cap(request.app),
            tenant_id=who.tenant_id,
            document=doc,
            label_set=body.label_set,
            texts=body.texts,
        )
    except TooManyWaits as e:
        raise ApiError(429, "rate_limited", e.message, {"Retry-After": "1"}) from e
    if view["status"] == "queued":
        response.status_code = 202
        response.headers["Location"] = f"/v1/previews/{view['preview_id']}"
    return view


@router.get(
    "/previews/{preview_id}",
    response_model=PreviewOut,
    responses=responses(401, 404, 422, 429),
    summary="Read a preview",
)
def read_preview(preview_id: PreviewId, st: State = Depends(state), who: Caller = Depends(caller)) -> dict[str, Any]:
    """A preview made by `POST /v1/preview` (kept an hour)."""
    return previewing.read_preview(st.sessions, preview_id, tenant_id=who.tenant_id)


@router.post(
    "/evaluations",
    status_code=202,
    response_model=EvaluationOut,
    responses=responses(401, 404, 413, 422, 429, 503),
    summary="Evaluate a label set (and a draft) on labelled messages",
)
def create_evaluation(
    body: EvaluationIn, response: Response, st: State = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """The worker scores every row with the set's current version and, with `document`, with that draft,
    and computes what `labelwise eval --sweep` prints for each (accuracy, macro-F1, coverage, the
    per-label table, the threshold sweep) plus the confusion matrix. 202 at once; poll `Location`
    (`done`/`total` show progress). At most `LABELWISE_EVAL_MAX_ROWS` rows. 404 when the tenant has
    no such set and no `document` is given."""
    doc = _document(body.document, body.label_set, st)
    rows = [Row(text=r.text, label=r.label) for r in body.rows]
    with st.sessions.begin() as session:
        row = evaluating.request_evaluation(
            session,
            tenant_id=who.tenant_id,
            label_set=body.label_set,
            document=doc,
            rows=rows,
            max_rows=st.settings.eval_max_rows,
            max_text_chars=st.settings.max_text_chars,
        )
        view = evaluating.evaluation_view(row)
    try:
        enqueue_evaluation(st.celery, view["evaluation_id"], queue=st.settings.queue)
    except Exception as e:
        raise BrokerUnavailableError(f"could not enqueue the evaluation ({type(e).__name__})") from e
    response.headers["Location"] = f"/v1/evaluations/{view['evaluation_id']}"
    return view


@router.get(
    "/evaluations/{evaluation_id}",
    response_model=EvaluationOut,
    responses=responses(401, 404, 422, 429),
    summary="Read an evaluation and its progress",
)
def read_evaluation(
    evaluation_id: EvaluationId, st: State = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """Status, progress and, once done, a report per side (`draft`, `current`)."""
    with st.sessions() as session:
        return evaluating.read_evaluation(session, tenant_id=who.tenant_id, evaluation_id=evaluation_id)


@router.get(
    "/evaluations/{evaluation_id}/figures/{side}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The figure `labelwise eval --plot` draws."},
        **responses(401, 404, 422, 429),
    },
    summary="Read an evaluation's figure",
)
def read_figure(
    evaluation_id: EvaluationId,
    side: Literal["draft", "current"],
    st: State = Depends(state),
    who: Caller = Depends(caller),
) -> Response:
    """The threshold sweep and the confusion heat map of one side, as PNG; 404 until it is done."""
    with st.sessions() as session:
        data = evaluating.evaluation_figure(session, tenant_id=who.tenant_id, evaluation_id=evaluation_id, side=side)
    return Response(data, media_type="image/png")
