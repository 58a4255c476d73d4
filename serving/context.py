"""What the routers share: made once by `create_app` and handed to each router's factory."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import HTTPException

from retrain_platform.datasets import DatasetSpec
from retrain_platform.settings import Settings
from retrain_platform.store import PredictionStore

from .model_holder import ModelHolder, Served
from .schemas import RequestSchemas


@dataclass(slots=True, eq=False)
class Serving:
    settings: Settings
    spec: DatasetSpec
    schemas: RequestSchemas
    holder: ModelHolder
    # The lifespan's store, None until the app starts. Handlers read it here: `app.state.store`
    # (kept for callers outside the app) would cost every request a failed attribute lookup (an
    # AttributeError made and caught) before Starlette's State finds it; a slot costs nothing.
    store: PredictionStore | None = None

    def served_model(self) -> Served:
        """The model to answer with, read once per request so a hot swap cannot mix two; 503 before the first."""
        served = self.holder.served
        if served is None:
            reason = self.holder.status.error or "the registry has not answered yet"
            raise HTTPException(503, f"no model is loaded yet: {reason}", headers={"Retry-After": "5"})
        return served
