"""POST /predict and POST /predict/batch: the hot path.

Bodies are read and validated here rather than by FastAPI (see RequestSchemas), and answers are
written as bytes (see json_response); the OpenAPI document still describes both, through
`openapi_extra` and the request components that `create_app` adds.
"""

# No `from __future__ import annotations`: FastAPI must see the annotations as objects.

import time
from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from retrain_platform.store import utc_time_text

from ..bodies import json_response, parse_body
from ..context import Serving
from ..ids import prediction_id, prediction_ids
from ..model_holder import Served
from ..schemas import INVALID_BODY, BatchPrediction, Prediction, RequestSchemas

VALIDATION_RULES = """Each field is checked against the dataset spec: its type, its allowed range (`minimum`,
`maximum`), and for categorical fields the list of known categories. **A category the model was not
trained on is rejected with 422**, like a missing required field, an out-of-range value or an unknown
field; the error's `loc` names the field. Nullable fields may be omitted or null."""


def prediction_row(prediction_id: str, created_at: float, model_version: str, features: dict, score: float,
                   label: int, latency_ms: float | None) -> dict:  # fmt: skip
    """A prediction as the log takes it: a value per `predictions` column, the time as the log
    holds it (`created_at` in seconds since the epoch); the challenger's are added by the log."""
    return {"prediction_id": prediction_id, "created_at": utc_time_text(created_at), "model_version": model_version,
            "features": features, "score": score, "predicted_label": label, "latency_ms": latency_ms}  # fmt: skip


def request_rows(features: Sequence[dict], ids: Sequence[str], scores: Sequence[float], labels: Sequence[int],
                 model_version: str, created_at: float, latency_ms: float | None) -> list[dict]:  # fmt: skip
    """The rows of a request of several predictions, which share a version, a time and a latency."""
    at = utc_time_text(created_at)  # a dict display per row, not `**shared`: 0.19 against 0.30 ms per 1,000 rows
    return [{"prediction_id": prediction_id, "created_at": at, "model_version": model_version, "latency_ms": latency_ms,
             "features": row, "score": score, "predicted_label": label}
            for prediction_id, row, score, label in zip(ids, features, scores, labels, strict=True)]  # fmt: skip


# Read from the query string by hand and documented here: a FastAPI Query parameter costs every
# request of the hot path its dependency resolution.
EXPLAIN_PARAMETER = {
    "name": "explain", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
    "description": "add each feature's contribution to the log-odds (LightGBM's tree SHAP); about 100 times "
                   "the cost of scoring the row",
}  # fmt: skip


def asks_explanation(request: Request) -> bool:
    return bool(request.scope["query_string"]) and request.query_params.get("explain", "").lower() in ("true", "1")


def documented(extra: dict) -> dict:
    return {**extra, "parameters": [EXPLAIN_PARAMETER]}


def explanations(served: Served, rows: list[dict]) -> list[dict]:
    explained = served.champion.contribution_rows(rows)
    return [{"bias": float(bias), "contributions": contributions}
            for bias, contributions in zip(explained.bias, explained.features.to_dict("records"), strict=True)]  # fmt: skip


def add_prediction_routes(router: APIRouter, serving: Serving, prefix: str = "", tags: Sequence[str] = ("predictions",)) -> None:
    schemas, served_model = serving.schemas, serving.served_model
    max_rows, max_bytes = serving.settings.serving_max_batch_rows, serving.settings.serving_max_body_bytes
    # Off: predictions are still answered with an id, but not logged (so they cannot be labelled).
    log_predictions = serving.settings.prediction_logging

    def elapsed_ms(started: float) -> float:
        return (time.perf_counter() - started) * 1000

    def log(served: Served, rows: list[dict]) -> None:
        """A request's predictions, in the log before the answer goes out (acknowledged means
        stored), with the challenger (if any) to score them off the response path."""
        serving.store.record_rows(rows, served.challenger)

    @router.post(
        f"{prefix}/predict", response_model=Prediction, tags=list(tags), summary="Score one row",
        description=VALIDATION_RULES, openapi_extra=documented(RequestSchemas.reference(schemas.row_name)),
        responses={**INVALID_BODY, 413: {"description": "body too large"}, 503: {"description": "no model loaded yet"}},
    )  # fmt: skip
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        features = parse_body(schemas.row, await request.body())
        served = served_model()
        score = served.champion.score_one(features)
        new_id = prediction_id()
        threshold = served.champion.threshold
        label = int(score >= threshold)
        if log_predictions:
            log(
                served,
                [prediction_row(new_id, time.time(), served.version, features, score, label, elapsed_ms(started))],
            )
        answer = {"prediction_id": new_id, "model_version": served.version, "probability": score, "label": label,
                  "threshold": threshold}  # fmt: skip
        if asks_explanation(request):
            answer["explanation"] = explanations(served, [features])[0]
        return json_response(answer, served.version)

    def score_batch(served: Served, rows: list[dict], started: float, explain: bool) -> Response:
        scores = served.champion.score_rows(rows).tolist()
        threshold = served.champion.threshold
        ids = prediction_ids(len(rows))
        labels = [int(score >= threshold) for score in scores]
        if log_predictions:
            log(served, request_rows(rows, ids, scores, labels, served.version, time.time(), elapsed_ms(started)))
        predictions = [{"prediction_id": prediction_id, "probability": score, "label": label}
                       for prediction_id, score, label in zip(ids, scores, labels, strict=True)]  # fmt: skip
        if explain:
            for prediction, explanation in zip(predictions, explanations(served, rows), strict=True):
                prediction["explanation"] = explanation
        return json_response({"model_version": served.version, "threshold": threshold, "count": len(rows),
                              "predictions": predictions}, served.version)  # fmt: skip

    @router.post(
        f"{prefix}/predict/batch", response_model=BatchPrediction, tags=list(tags), summary="Score many rows",
        description=f"`rows` holds 1 to {max_rows} rows; a longer batch is answered **413** "
        f"(so is a body over {max_bytes} bytes). Each row gets its own prediction id. "
        + VALIDATION_RULES,
        openapi_extra=documented(RequestSchemas.reference(schemas.batch_name)),
        responses={**INVALID_BODY, 413: {"description": f"more than {max_rows} rows"}, 503: {"description": "no model"}},
    )  # fmt: skip
    async def predict_batch(request: Request) -> Response:
        started = time.perf_counter()
        rows = parse_body(schemas.batch, await request.body())["rows"]
        served = served_model()
        # Off the event loop: scoring 1,000 rows takes milliseconds, single rows keep flowing meanwhile.
        return await run_in_threadpool(score_batch, served, rows, started, asks_explanation(request))
