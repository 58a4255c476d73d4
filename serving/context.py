"""What the routers share: one `Serving` per dataset, made by `create_app` and handed to each
router's factory. A dataset's log, decisions and Dagster jobs are in its scope (retrain_platform.scopes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException

from retrain_platform.datasets import DatasetSpec
from retrain_platform.scopes import scoped_dir, scoped_name, scoped_store_url
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
    scope: str = ""  # empty for the default dataset
    # The lifespan's store, None until the app starts. Handlers read it here: `app.state.store`
    # (kept for callers outside the app) would cost every request a failed attribute lookup (an
    # AttributeError made and caught) before Starlette's State finds it; a slot costs nothing.
    store: PredictionStore | None = None

    @property
    def store_url(self) -> str:
        return scoped_store_url(self.settings.store_url, self.scope)

    @property
    def log_dir(self) -> Path:
        return scoped_dir(self.settings.home_dir / "prediction-log", self.scope)

    @property
    def decisions_dir(self) -> Path:
        return scoped_dir(self.settings.decisions_dir, self.scope)

    @property
    def retrain_job(self) -> str:
        return scoped_name(self.settings.dagster_retrain_job, self.scope)

    def open_store(self) -> PredictionStore:
        settings = self.settings
        self.store = PredictionStore(
            self.store_url, log_dir=self.log_dir, sync=settings.log_sync,
            batch_size=settings.store_batch_size, flush_interval=settings.store_flush_seconds,
        )  # fmt: skip
        return self.store

    def served_model(self) -> Served:
        """The model to answer with, read once per request so a hot swap cannot mix two; 503 before the first."""
        served = self.holder.served
        if served is None:
            reason = self.holder.status.error or "the registry has not answered yet"
            raise HTTPException(503, f"no model is loaded yet for {self.spec.name!r}: {reason}", headers={"Retry-After": "5"})
        return served
