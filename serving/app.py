"""FastAPI serving: predictions from the registry's production model, a durable prediction and
label log, and a button that retrains through Dagster. Run with `uvicorn serving.app:app`.

`create_app` only wires the parts: the shared context, the lifespan that opens the store and
starts the model holder, middleware, the error handler, and the routes of each concern (routers/).
No Dagster import anywhere in serving: the retrain job is launched over Dagster's GraphQL API.
"""

from __future__ import annotations

import asyncio
import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from retrain_platform.datasets import get_spec
from retrain_platform.settings import Settings
from retrain_platform.store import PredictionStore

from .bodies import BodySizeLimit, invalid_body_handler
from .context import Serving
from .model_holder import ModelHolder
from .routers.docs import add_docs_routes
from .routers.feedback import add_feedback_routes
from .routers.operations import add_operations_routes
from .routers.predictions import add_prediction_routes
from .routers.retrain import add_retrain_routes
from .schemas import RequestSchemas, request_schemas


def lifespan(serving: Serving):
    settings = serving.settings

    @asynccontextmanager
    async def run(app: FastAPI):
        store = PredictionStore(
            settings.store_url, log_dir=settings.home_dir / "prediction-log", sync=settings.log_sync,
            batch_size=settings.store_batch_size, flush_interval=settings.store_flush_seconds,
        )  # fmt: skip
        # Replays what a worker killed earlier left unshipped, before the first request.
        await asyncio.to_thread(store.start)
        serving.store = app.state.store = store
        await asyncio.to_thread(serving.holder.start)
        # Everything loaded so far (libraries, the model) lives as long as the process: keep it out
        # of the garbage collector's full passes, which otherwise walk it all and stall requests.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # Uvicorn has finished the in-flight requests by now; what they logged is shipped here.
            await asyncio.to_thread(serving.holder.stop)
            await asyncio.to_thread(store.close)

    return run


def with_request_components(app: FastAPI, schemas: RequestSchemas) -> None:
    """Add the request bodies' JSON schemas to the OpenAPI document: the routes that read their
    own bodies refer to them (`openapi_extra`), but FastAPI cannot see them."""
    documented = app.openapi

    def openapi() -> dict:
        schema = documented()  # FastAPI keeps this dict and returns it on every later call
        for name, component in schemas.components().items():
            schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, component)
        return schema

    app.openapi = openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    spec = get_spec(settings.dataset)
    schemas = request_schemas(spec, settings.serving_max_batch_rows)
    serving = Serving(settings, spec, schemas, ModelHolder(spec, settings.tracking_uri, settings.serving_poll_seconds))

    app = FastAPI(
        title=f"retrain_platform serving: {spec.name}",
        description=f"Predictions from `models:/{spec.model_name}@production`. {spec.description}",
        version="1",
        lifespan=lifespan(serving),
        # No OpenTelemetry export here; FastAPI's check for it costs on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # FastAPI's pages load Swagger UI and ReDoc from a CDN: ours, added last, do not
        redoc_url=None,
    )
    app.state.holder = serving.holder
    app.state.spec = spec
    app.add_middleware(BodySizeLimit, max_bytes=settings.serving_max_body_bytes)
    app.add_exception_handler(RequestValidationError, invalid_body_handler(settings.serving_max_batch_rows))
    # Straight onto the app's router, predictions first (requests are matched in this order): an
    # included APIRouter is a nested router in FastAPI 0.165, matched twice per request, which
    # costs /predict about 90 more Python calls than its 300.
    for add_routes in (add_prediction_routes, add_feedback_routes, add_operations_routes, add_retrain_routes):
        add_routes(app.router, serving)
    add_docs_routes(app.router, app.title, app.openapi_url)
    with_request_components(app, schemas)
    return app


app = create_app()
