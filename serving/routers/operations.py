"""For operators and load balancers: health, the model being served, and a registry check on demand."""

import asyncio
from collections.abc import Sequence

from fastapi import APIRouter, HTTPException, Response

from ..auth import ADMIN
from ..context import Serving
from ..schemas import AUTH_ERRORS, Health, ModelInfo, Reloaded, StoreHealth


def add_model_info_route(router: APIRouter, serving: Serving, prefix: str = "", tags: Sequence[str] = ("operations",)) -> None:
    spec = serving.spec

    @router.get(f"{prefix}/model-info", response_model=ModelInfo, tags=list(tags), summary="The model being served",
                responses={503: {"description": "no model loaded yet"}})  # fmt: skip
    def model_info() -> ModelInfo:
        served = serving.served_model()
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


def add_operations_routes(router: APIRouter, serving: Serving) -> None:
    holder = serving.holder

    @router.get(
        "/health", response_model=Health, tags=["operations"], summary="Liveness and readiness",
        description="200 while a model is loaded (`ok`, or `degraded` when the registry or the prediction "
        "store fails: the last good model keeps serving); 503 `unavailable` before any model is loaded.",
    )  # fmt: skip
    def health(response: Response) -> Health:
        stats = serving.store.stats()
        body = holder.health()
        if body["status"] == "ok" and stats.last_error:
            body["status"] = "degraded"
        if not body["model_loaded"]:
            response.status_code = 503
        log_health = StoreHealth(pending=stats.pending, written=stats.written, failed_writes=stats.failed_writes,
                                 last_error=stats.last_error)  # fmt: skip
        return Health(**body, store=log_health)

    @router.get("/health/live", tags=["operations"], summary="Liveness only: the process answers")
    def live() -> dict:
        return {"status": "alive"}

    add_model_info_route(router, serving)

    @router.post(
        "/admin/reload", response_model=Reloaded, tags=["operations"], dependencies=[ADMIN],
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
