"""/models/{name}/...: every dataset of the deployment, each from its own production model.

POST predict, predict/batch and feedback, GET model-info, and the Retrain page and its routes, as at
the root paths (which stay the default dataset's); GET /models lists them with what each serves.
A name that is not a dataset is a 404 naming the known ones; a dataset whose model is not loaded
answers 503 alone, and each model is hot-swapped by its own holder.
"""

from collections.abc import Sequence

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from ..context import Serving
from .feedback import add_feedback_routes
from .operations import add_model_info_route
from .predictions import add_prediction_routes
from .retrain import add_retrain_routes

ROUTES = "POST predict, POST predict/batch, POST feedback, POST feedback/batch, GET model-info, GET retrain"


class ServedModel(BaseModel):
    dataset: str
    model_name: str
    path: str  # where its routes are
    model_version: str | None  # None: no model loaded yet (its routes answer 503)
    challenger_version: str | None
    registry_error: str | None


def add_model_routes(router: APIRouter, servings: Sequence[Serving]) -> None:
    by_name = {serving.spec.name: serving for serving in servings}
    for name, serving in by_name.items():
        prefix, tags = f"/models/{name}", [f"models/{name}"]
        add_prediction_routes(router, serving, prefix, tags)
        add_feedback_routes(router, serving, prefix, tags)
        add_model_info_route(router, serving, prefix, tags)
        add_retrain_routes(router, serving, prefix)

    @router.get("/models", response_model=list[ServedModel], tags=["operations"],
                summary="Every dataset served here, and the model each one serves")  # fmt: skip
    def models() -> list[ServedModel]:
        listed = []
        for name, serving in by_name.items():
            served = serving.holder.served
            listed.append(ServedModel(
                dataset=name, model_name=serving.spec.model_name, path=f"/models/{name}",
                model_version=served.version if served else None,
                challenger_version=served.challenger_version if served else None,
                registry_error=serving.holder.status.error,
            ))  # fmt: skip
        return listed

    # Last: only what no route above matched reaches it.
    @router.api_route("/models/{name}/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
    def unknown(name: str, rest: str) -> None:
        if name not in by_name:
            raise HTTPException(404, f"unknown model {name!r}; known: {', '.join(sorted(by_name))}")
        raise HTTPException(404, f"{rest!r} is not a route of model {name!r}; its routes: {ROUTES}")
