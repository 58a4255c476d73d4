"""FastAPI serving: predictions from the registry's production models, a durable prediction and
label log, and a button that retrains through Dagster. Run with `uvicorn serving.app:app`.

Every dataset of the deployment is served under /models/{name}/, each with its own model holder
(hot-swapped alone), log and request schemas; the default dataset also at the root paths.
`create_app` only wires the parts: a context per dataset, the lifespan that opens their stores and
starts their model holders, middleware, the error handler, and the routes of each concern (routers/).
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

from .bodies import BodySizeLimit, invalid_body_handler
from .context import Serving
from .model_holder import ModelHolder
from .routers.docs import add_docs_routes
from .routers.feedback import add_feedback_routes
from .routers.models import add_model_routes
from .routers.operations import add_operations_routes
from .routers.predictions import add_prediction_routes
from .routers.retrain import add_retrain_routes
from .schemas import RequestSchemas, request_schemas


def lifespan(servings: list[Serving]):
    @asynccontextmanager
    async def run(app: FastAPI):
        # Each dataset's log replays what a worker killed earlier left unshipped, before the first request.
        for serving in servings:
            await asyncio.to_thread(serving.open_store().start)
        app.state.store = servings[0].store  # the default dataset's
        for serving in servings:
            await asyncio.to_thread(serving.holder.start)
        # Everything loaded so far (libraries, the models) lives as long as the process: keep it out
        # of the garbage collector's full passes, which otherwise walk it all and stall requests.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # Uvicorn has finished the in-flight requests by now; what they logged is shipped here.
            for serving in servings:
                await asyncio.to_thread(serving.holder.stop)
            for serving in servings:
                await asyncio.to_thread(serving.store.close)

    return run


def with_request_components(app: FastAPI, every_schemas: list[RequestSchemas]) -> None:
    """Add the request bodies' JSON schemas to the OpenAPI document: the routes that read their
    own bodies refer to them (`openapi_extra`), but FastAPI cannot see them."""
    documented = app.openapi

    def openapi() -> dict:
        schema = documented()  # FastAPI keeps this dict and returns it on every later call
        for schemas in every_schemas:
            for name, component in schemas.components().items():
                schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(name, component)
        return schema

    app.openapi = openapi


def dataset_serving(settings: Settings, name: str) -> Serving:
    spec = get_spec(name)
    holder = ModelHolder(spec, settings.tracking_uri, settings.serving_poll_seconds)
    return Serving(settings, spec, request_schemas(spec, settings.serving_max_batch_rows), holder, settings.scope(name))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    servings = [dataset_serving(settings, name) for name in settings.dataset_names()]  # the default first
    default, spec = servings[0], servings[0].spec
    app = FastAPI(
        title=f"retrain_platform serving: {spec.name}",
        description=f"Predictions from `models:/{spec.model_name}@production` at /predict; from each dataset's "
        f"production model at /models/{{name}}/predict ({', '.join(s.spec.name for s in servings)}). {spec.description}",
        version="1",
        lifespan=lifespan(servings),
        # No OpenTelemetry export here; FastAPI's check for it costs on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # FastAPI's pages load Swagger UI and ReDoc from a CDN: ours, added last, do not
        redoc_url=None,
    )
    app.state.holder = default.holder
    app.state.spec = spec
    app.add_middleware(BodySizeLimit, max_bytes=settings.serving_max_body_bytes)
    app.add_exception_handler(RequestValidationError, invalid_body_handler(settings.serving_max_batch_rows))
    # Straight onto the app's router, predictions first (requests are matched in this order): an
    # included APIRouter is a nested router in FastAPI 0.165, matched twice per request, which
    # costs /predict about 90 more Python calls than its 300.
    for add_routes in (add_prediction_routes, add_feedback_routes, add_operations_routes, add_retrain_routes):
        add_routes(app.router, default)
    add_model_routes(app.router, servings)  # /models/{name}/...: every dataset, the default too
    add_docs_routes(app.router, app.title, app.openapi_url)
    with_request_components(app, [serving.schemas for serving in servings])
    return app


app = create_app()
