"""FastAPI serving: predictions from the registry's production model, a durable prediction and
label log, and a button that retrains through Dagster. Run with `uvicorn serving.app:app`.

No Dagster import here: the retrain job is launched over Dagster's GraphQL API.
"""

# No `from __future__ import annotations`: FastAPI must see the generated request models as
# objects, not as names it would look up in this module.

import asyncio
import math
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError

from retrain_platform.datasets import get_spec
from retrain_platform.settings import Settings
from retrain_platform.store import DuplicateLabel, PredictionStore, UnknownPrediction

from .model_holder import ModelHolder, Served
from .retrain_launcher import DagsterClient, retrain_router
from .schemas import (
    AUTH_ERRORS,
    UNREADABLE_BODY,
    BatchPrediction,
    Feedback,
    FeedbackAck,
    Health,
    ModelInfo,
    Prediction,
    Reloaded,
    StoreHealth,
    batch_model,
    features_model,
)

# Secrets, read per request (never cached in Settings), so a rotated token takes effect at once.
ADMIN_TOKEN_ENV = "RETRAIN_ADMIN_TOKEN"
FEEDBACK_TOKEN_ENV = "RETRAIN_FEEDBACK_TOKEN"

VALIDATION_RULES = """Each field is checked against the dataset spec: its type, its allowed range (`minimum`,
`maximum`), and for categorical fields the list of known categories. **A category the model was not
trained on is rejected with 422**, like a missing required field, an out-of-range value or an unknown
field; the error's `loc` names the field. Nullable fields may be omitted or null."""


def shadow_scores(rows: list[dict]) -> None:
    """Score the challenger on a batch in the store's writer thread, away from the response path."""
    groups: dict[int, tuple] = {}
    for row in rows:
        shadow = row.pop("_shadow", None)
        if shadow is not None:
            groups.setdefault(id(shadow), (shadow, []))[1].append(row)
    for predictor, group in groups.values():
        for row, score in zip(group, predictor.score_rows([row["features"] for row in group]), strict=True):
            row["shadow_version"] = predictor.version
            row["shadow_score"] = float(score)


class BodySizeLimit:
    """Refuse a declared body larger than any valid request (413) before reading it."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                detail = f"request body of {int(length)} bytes is over the limit of {self.max_bytes} bytes"
                await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def token_guard(*env_names: str):
    """A dependency that wants `Authorization: Bearer <token>` matching one of the env tokens."""
    bearer = HTTPBearer(auto_error=False, description=f"the value of {' or '.join(env_names)}")

    def check(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        tokens = [os.environ[name] for name in env_names if os.environ.get(name)]
        if not tokens:
            raise HTTPException(503, f"admin token not configured: set {env_names[0]} on the server")
        if credentials is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        given = credentials.credentials.encode()
        if not any(secrets.compare_digest(given, token.encode()) for token in tokens):
            raise HTTPException(403, "invalid token")

    return check


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    spec = get_spec(settings.dataset)
    max_rows, max_bytes = settings.serving_max_batch_rows, settings.serving_max_body_bytes
    Features = features_model(spec)
    Batch = batch_model(spec, Features, max_rows)
    holder = ModelHolder(spec, settings.tracking_uri, settings.serving_poll_seconds)
    # Off: predictions are still answered with an id, but not logged (so they cannot be labelled).
    log_predictions = settings.prediction_logging
    dagster = DagsterClient(settings.dagster_url, settings.dagster_location, settings.dagster_repository)
    admin = Depends(token_guard(ADMIN_TOKEN_ENV))
    labeller = Depends(token_guard(ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = PredictionStore(
            settings.store_url, batch_size=settings.store_batch_size, flush_interval=settings.store_flush_seconds,
            prepare=shadow_scores,
        )  # fmt: skip
        store.start()
        app.state.store = store
        await asyncio.to_thread(holder.start)
        try:
            yield
        finally:
            # Uvicorn has finished the in-flight requests by now; what they queued is flushed here.
            await asyncio.to_thread(holder.stop)
            await asyncio.to_thread(store.close)

    app = FastAPI(
        title=f"retrain_platform serving: {spec.name}",
        description=f"Predictions from `models:/{spec.model_name}@production`. {spec.description}",
        version="1",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.spec = spec
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(error["type"] == "too_long" and tuple(error["loc"][:2]) == ("body", "rows") for error in errors):
            detail = f"a batch holds at most {max_rows} rows; split it into several requests"
            return JSONResponse({"detail": detail}, status_code=413)
        # FastAPI's own answer echoes the input, and a NaN input would make that answer a 500.
        return JSONResponse({"detail": _json_safe(jsonable_encoder(errors))}, status_code=422)

    def served_model() -> Served:
        served = holder.served
        if served is None:
            reason = holder.status.error or "the registry has not answered yet"
            raise HTTPException(503, f"no model is loaded yet: {reason}", headers={"Retry-After": "5"})
        return served

    def logged(served: Served, prediction_id: str, features: dict, score: float, started: float) -> dict:
        return {
            "prediction_id": prediction_id,
            "created_at": datetime.now(UTC),
            "model_version": served.version,
            "features": features,
            "score": score,
            "predicted_label": int(score >= served.champion.threshold),
            "latency_ms": (time.perf_counter() - started) * 1000,
            "_shadow": served.challenger,
        }

    # -- predictions ----------------------------------------------------------------------------
    @app.post(
        "/predict", response_model=Prediction, tags=["predictions"], summary="Score one row",
        description=VALIDATION_RULES, responses={**UNREADABLE_BODY, 413: {"description": "body too large"},
                                                 503: {"description": "no model loaded yet"}},
    )  # fmt: skip
    async def predict(row: Features, response: Response) -> Prediction:  # type: ignore[valid-type]
        started = time.perf_counter()
        served = served_model()  # read once: a concurrent hot swap cannot mix two models
        features = row.model_dump()
        score = float(served.champion.score_rows([features])[0])
        prediction_id = str(uuid.uuid4())
        if log_predictions:
            app.state.store.record(logged(served, prediction_id, features, score, started))
        response.headers["X-Model-Version"] = served.version
        threshold = served.champion.threshold
        return Prediction(
            prediction_id=prediction_id, model_version=served.version, probability=score,
            label=int(score >= threshold), threshold=threshold,
        )  # fmt: skip

    @app.post(
        "/predict/batch", response_model=BatchPrediction, tags=["predictions"], summary="Score many rows",
        description=f"`rows` holds 1 to {max_rows} rows; a longer batch is answered **413** "
        f"(so is a body over {max_bytes} bytes). Each row gets its own prediction id. "
        + VALIDATION_RULES,
        responses={**UNREADABLE_BODY, 413: {"description": f"more than {max_rows} rows"},
                   503: {"description": "no model"}},
    )  # fmt: skip
    def predict_batch(body: Batch, response: Response) -> BatchPrediction:  # type: ignore[valid-type]
        started = time.perf_counter()
        served = served_model()
        rows = body.model_dump()["rows"]  # one call, not one per row: a third of the cost
        scores = served.champion.score_rows(rows)
        threshold = served.champion.threshold
        out, log = [], []
        for features, score in zip(rows, scores.tolist(), strict=True):
            prediction_id = str(uuid.uuid4())
            if log_predictions:
                log.append(logged(served, prediction_id, features, score, started))
            # Plain dicts, validated once by BatchPrediction: ten times cheaper than a model per row.
            out.append({"prediction_id": prediction_id, "probability": score, "label": int(score >= threshold)})
        if log:
            app.state.store.record_many(log)
        response.headers["X-Model-Version"] = served.version
        return BatchPrediction(model_version=served.version, threshold=threshold, count=len(out), predictions=out)

    @app.post(
        "/feedback", response_model=FeedbackAck, status_code=201, tags=["predictions"],
        summary="Record the true outcome of a prediction", dependencies=[labeller],
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
            ack = app.state.store.add_label(body.prediction_id, body.label)
        except UnknownPrediction as err:
            raise HTTPException(404, str(err)) from err
        except DuplicateLabel as err:
            raise HTTPException(409, str(err)) from err
        except SQLAlchemyError as err:
            raise HTTPException(503, f"prediction store unavailable: {type(err).__name__}") from err
        return FeedbackAck(**ack.__dict__)

    # -- model and health -----------------------------------------------------------------------
    @app.get(
        "/health", response_model=Health, tags=["operations"],
        summary="Liveness and readiness",
        description="200 while a model is loaded (`ok`, or `degraded` when the registry or the prediction "
        "store fails: the last good model keeps serving); 503 `unavailable` before any model is loaded.",
    )  # fmt: skip
    def health(response: Response) -> Health:
        stats = app.state.store.stats()
        body = holder.health()
        if body["status"] == "ok" and stats.last_error:
            body["status"] = "degraded"
        if not body["model_loaded"]:
            response.status_code = 503
        store = StoreHealth(pending=stats.pending, written=stats.written, failed_writes=stats.failed_writes,
                            last_error=stats.last_error)  # fmt: skip
        return Health(**body, store=store)

    @app.get("/health/live", tags=["operations"], summary="Liveness only: the process answers")
    def live() -> dict:
        return {"status": "alive"}

    @app.get("/model-info", response_model=ModelInfo, tags=["operations"], summary="The model being served")
    def model_info() -> ModelInfo:
        served = served_model()
        card = served.card
        return ModelInfo(
            model_name=spec.model_name,
            model_uri=f"models:/{spec.model_name}/{card.version}",
            version=card.version,
            loaded_at=served.loaded_at,
            decision_threshold=served.champion.threshold,
            data_window=card.tags.get("data_window"),
            promoted_at=card.tags.get("promoted_at"),
            dagster_run_id=card.tags.get("dagster_run_id"),
            mlflow_run_id=card.run_id,
            metrics=card.metrics,
            tags=card.tags,
            challenger_version=served.challenger_version,
        )

    @app.post(
        "/admin/reload", response_model=Reloaded, tags=["operations"], dependencies=[admin],
        summary="Check the registry now instead of at the next poll",
        responses={**AUTH_ERRORS,
                   503: {"description": "the registry could not be read; the current model keeps serving"}},
    )  # fmt: skip
    async def reload() -> Reloaded:
        changed = await asyncio.to_thread(holder.refresh)
        if holder.status.error:
            raise HTTPException(503, f"registry check failed: {holder.status.error}")
        served = holder.served
        return Reloaded(
            changed=changed, model_version=served.version if served else None,
            challenger_version=served.challenger_version if served else None, registry_error=None,
        )  # fmt: skip

    job = settings.dagster_retrain_job
    app.include_router(retrain_router(dagster, job, admin, spec.model_name, lambda: holder.served))
    return app


app = create_app()
