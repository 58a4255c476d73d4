"""FastAPI serving: predictions from the registry's production model, a durable prediction and
label log, and a button that retrains through Dagster. Run with `uvicorn serving.app:app`.

No Dagster import here: the retrain job is launched over Dagster's GraphQL API.
"""

# No `from __future__ import annotations`: FastAPI must see the generated request models as
# objects, not as names it would look up in this module.

import asyncio
import gc
import math
import os
import secrets
import time
from contextlib import asynccontextmanager

import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from retrain_platform.datasets import get_spec
from retrain_platform.settings import Settings
from retrain_platform.store import (
    Chunk,
    DuplicateLabel,
    PredictionStore,
    UnknownPrediction,
    prediction_row,
    request_rows,
)

from .balancer import ConnectionBalancer
from .ids import prediction_id, prediction_ids
from .model_holder import ModelHolder, Served
from .retrain_launcher import DagsterClient, retrain_router
from .schemas import (
    AUTH_ERRORS,
    INVALID_BODY,
    UNREADABLE_BODY,
    BatchPrediction,
    Feedback,
    FeedbackAck,
    Health,
    ModelInfo,
    Prediction,
    Reloaded,
    RequestSchemas,
    StoreHealth,
    request_schemas,
)

# Secrets, read per request (never cached in Settings), so a rotated token takes effect at once.
ADMIN_TOKEN_ENV = "RETRAIN_ADMIN_TOKEN"
FEEDBACK_TOKEN_ENV = "RETRAIN_FEEDBACK_TOKEN"

VALIDATION_RULES = """Each field is checked against the dataset spec: its type, its allowed range (`minimum`,
`maximum`), and for categorical fields the list of known categories. **A category the model was not
trained on is rejected with 422**, like a missing required field, an out-of-range value or an unknown
field; the error's `loc` names the field. Nullable fields may be omitted or null."""


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


def parse_body(adapter: TypeAdapter, body: bytes):
    """Validate a JSON body in one pass; errors read as FastAPI's own (422, `loc` from "body")."""
    try:
        return adapter.validate_json(body)
    except ValidationError as err:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in err.errors(include_url=False)]
        for error in errors:
            if isinstance(error.get("input"), bytes):  # JSON that does not parse: quote its start, not all of it
                error["input"] = error["input"][:200].decode("utf-8", "replace")
        raise RequestValidationError(errors) from None


def json_response(content: dict, model_version: str) -> Response:
    """The answer as JSON bytes: the response models document it, but validating our own output
    again would cost more than scoring (20 ms for 1,000 rows)."""
    body = orjson.dumps(content)
    return Response(body, media_type="application/json", headers={"X-Model-Version": model_version})


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
    schemas = request_schemas(spec, max_rows)
    holder = ModelHolder(spec, settings.tracking_uri, settings.serving_poll_seconds)
    # Off: predictions are still answered with an id, but not logged (so they cannot be labelled).
    log_predictions = settings.prediction_logging
    dagster = DagsterClient(settings.dagster_url, settings.dagster_location, settings.dagster_repository)
    admin = Depends(token_guard(ADMIN_TOKEN_ENV))
    labeller = Depends(token_guard(ADMIN_TOKEN_ENV, FEEDBACK_TOKEN_ENV))

    # The lifespan's store. The endpoints read it here: `app.state.store` (kept for callers outside
    # the app) would cost every request a failed attribute lookup (an AttributeError made and
    # caught) before Starlette's State finds it.
    store: PredictionStore | None = None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal store
        store = PredictionStore(
            settings.store_url, batch_size=settings.store_batch_size, flush_interval=settings.store_flush_seconds,
            insert_process=settings.store_insert_process and log_predictions,  # no process for a log left off
        )  # fmt: skip
        store.start()
        app.state.store = store
        await asyncio.to_thread(holder.start)
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it out
        # of the garbage collector's full passes, which otherwise walk it all and stall requests.
        gc.collect()
        gc.freeze()
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
        # No OpenTelemetry export here; FastAPI's check for it costs on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.holder = holder
    app.state.spec = spec
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
    app.add_middleware(ConnectionBalancer)  # several uvicorn workers: keeps their shares of connections even

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

    def elapsed_ms(started: float) -> float:
        return (time.perf_counter() - started) * 1000

    def log(served: Served, rows: list[tuple]) -> None:
        """Queue a request's predictions for the log, with the challenger (if any) to score them
        off the response path."""
        store.record_chunk(Chunk(rows, served.challenger))

    # -- predictions ----------------------------------------------------------------------------
    # Bodies are read and validated here rather than by FastAPI (see RequestSchemas); the OpenAPI
    # document still describes them, through `openapi_extra` and the components added below.
    @app.post(
        "/predict", response_model=Prediction, tags=["predictions"], summary="Score one row",
        description=VALIDATION_RULES, openapi_extra=RequestSchemas.reference(schemas.row_name),
        responses={**INVALID_BODY, 413: {"description": "body too large"}, 503: {"description": "no model loaded yet"}},
    )  # fmt: skip
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        features = parse_body(schemas.row, await request.body())
        served = served_model()  # read once: a concurrent hot swap cannot mix two models
        score = served.champion.score_one(features)
        new_id = prediction_id()
        threshold = served.champion.threshold
        label = int(score >= threshold)
        if log_predictions:
            log(served, [prediction_row(new_id, time.time(), served.version, features, score, label, elapsed_ms(started))])
        return json_response({"prediction_id": new_id, "model_version": served.version, "probability": score,
                              "label": label, "threshold": threshold}, served.version)  # fmt: skip

    def score_batch(served: Served, rows: list[dict], started: float) -> Response:
        scores = served.champion.score_rows(rows).tolist()
        threshold = served.champion.threshold
        ids = prediction_ids(len(rows))
        labels = [int(score >= threshold) for score in scores]
        if log_predictions:
            log(served, request_rows(rows, ids, scores, labels, served.version, time.time(), elapsed_ms(started)))
        predictions = [{"prediction_id": prediction_id, "probability": score, "label": label}
                       for prediction_id, score, label in zip(ids, scores, labels, strict=True)]  # fmt: skip
        return json_response({"model_version": served.version, "threshold": threshold, "count": len(rows),
                              "predictions": predictions}, served.version)  # fmt: skip

    @app.post(
        "/predict/batch", response_model=BatchPrediction, tags=["predictions"], summary="Score many rows",
        description=f"`rows` holds 1 to {max_rows} rows; a longer batch is answered **413** "
        f"(so is a body over {max_bytes} bytes). Each row gets its own prediction id. "
        + VALIDATION_RULES,
        openapi_extra=RequestSchemas.reference(schemas.batch_name),
        responses={**INVALID_BODY, 413: {"description": f"more than {max_rows} rows"}, 503: {"description": "no model"}},
    )  # fmt: skip
    async def predict_batch(request: Request) -> Response:
        started = time.perf_counter()
        rows = parse_body(schemas.batch, await request.body())["rows"]
        served = served_model()
        # Off the event loop: scoring 1,000 rows takes milliseconds, single rows keep flowing meanwhile.
        return await run_in_threadpool(score_batch, served, rows, started)

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
            ack = store.add_label(body.prediction_id, body.label)
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
        stats = store.stats()
        body = holder.health()
        if body["status"] == "ok" and stats.last_error:
            body["status"] = "degraded"
        if not body["model_loaded"]:
            response.status_code = 503
        log_health = StoreHealth(pending=stats.pending, written=stats.written, failed_writes=stats.failed_writes,
                                 last_error=stats.last_error)  # fmt: skip
        return Health(**body, store=log_health)

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

    documented = app.openapi

    def openapi() -> dict:
        schema = documented()  # FastAPI keeps this dict and returns it on every later call
        for name, component in schemas.components().items():
            schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, component)
        return schema

    app.openapi = openapi

    job = settings.dagster_retrain_job
    app.include_router(retrain_router(dagster, job, admin, spec.model_name, lambda: holder.served))
    return app


app = create_app()
