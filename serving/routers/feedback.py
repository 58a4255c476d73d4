"""POST /feedback and /feedback/batch: the true outcome of logged predictions, each written once."""

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from retrain_platform.store import DuplicateLabel, LabelRecord, UnknownPrediction

from ..auth import ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV, LABELLER
from ..context import Serving
from ..schemas import AUTH_ERRORS, UNREADABLE_BODY, Feedback, FeedbackAck


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[Feedback] = Field(min_length=1, description="written in this order, each at most once")


class LabelOutcome(BaseModel):
    prediction_id: str
    status: Literal["labelled", "unknown", "duplicate"]
    label: int | None = None
    labelled_at: datetime | None = None
    model_version: str | None = None
    detail: str | None = None


class FeedbackBatchAck(BaseModel):
    labelled: int = Field(description="labels written by this request")
    results: list[LabelOutcome] = Field(description="one per label sent, in the same order")


def outcome(prediction_id: str, result: LabelRecord | Exception) -> LabelOutcome:
    if isinstance(result, LabelRecord):
        return LabelOutcome(status="labelled", **result.__dict__)
    status = "unknown" if isinstance(result, UnknownPrediction) else "duplicate"
    return LabelOutcome(prediction_id=prediction_id, status=status, detail=str(result))


def add_feedback_routes(router: APIRouter, serving: Serving, prefix: str = "", tags: Sequence[str] = ("predictions",)) -> None:
    max_rows = serving.settings.serving_max_batch_rows
    @router.post(
        f"{prefix}/feedback", response_model=FeedbackAck, status_code=201, tags=list(tags),
        summary="Record the true outcome of a prediction", dependencies=[LABELLER],
        description="Labels are written once: an unknown prediction id is **404**, a second label for the "
        f"same id is **409**. Bearer token: {ADMIN_TOKEN_ENV} (or {FEEDBACK_TOKEN_ENV} when set).",
        responses={
            **UNREADABLE_BODY, **AUTH_ERRORS, 404: {"description": "unknown prediction id"},
            409: {"description": "already labelled"},
            503: {"description": "the prediction store is unavailable, or the server has no token configured"},
        },
    )  # fmt: skip
    def feedback(body: Feedback) -> FeedbackAck:
        try:
            ack = serving.store.add_label(body.prediction_id, body.label)
        except UnknownPrediction as err:
            raise HTTPException(404, str(err)) from err
        except DuplicateLabel as err:
            raise HTTPException(409, str(err)) from err
        except SQLAlchemyError as err:
            raise HTTPException(503, f"prediction store unavailable: {type(err).__name__}") from err
        return FeedbackAck(**ack.__dict__)

    @router.post(
        f"{prefix}/feedback/batch", response_model=FeedbackBatchAck, tags=list(tags), dependencies=[LABELLER],
        summary="Record the true outcomes of many predictions at once",
        description=f"1 to {max_rows} labels, written in order in one transaction. Each is written once, as "
        "by /feedback; an unknown id or a second label is reported in its own result (`unknown`, "
        "`duplicate`) and does not stop the others.",
        responses={**UNREADABLE_BODY, **AUTH_ERRORS, 413: {"description": f"more than {max_rows} labels"},
                   503: {"description": "the prediction store is unavailable, or the server has no token configured"}},
    )  # fmt: skip
    def feedback_batch(body: FeedbackBatch) -> FeedbackBatchAck:
        if len(body.labels) > max_rows:
            raise HTTPException(413, f"{len(body.labels)} labels; at most {max_rows} per request")
        items = [(item.prediction_id, item.label) for item in body.labels]
        try:
            results = serving.store.add_labels(items)
        except SQLAlchemyError as err:
            raise HTTPException(503, f"prediction store unavailable: {type(err).__name__}") from err
        outcomes = [outcome(prediction_id, result) for (prediction_id, _), result in zip(items, results, strict=True)]
        return FeedbackBatchAck(labelled=sum(o.status == "labelled" for o in outcomes), results=outcomes)
