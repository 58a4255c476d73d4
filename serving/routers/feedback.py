"""POST /feedback: the true outcome of a logged prediction, written once."""

from collections.abc import Sequence

from fastapi import APIRouter, HTTPException
from sqlalchemy.exc import SQLAlchemyError

from retrain_platform.store import DuplicateLabel, UnknownPrediction

from ..auth import ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV, LABELLER
from ..context import Serving
from ..schemas import AUTH_ERRORS, UNREADABLE_BODY, Feedback, FeedbackAck


def add_feedback_routes(router: APIRouter, serving: Serving, prefix: str = "", tags: Sequence[str] = ("predictions",)) -> None:
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
