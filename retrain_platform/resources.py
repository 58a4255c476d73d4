"""Resources that several domains share: the dataset, the MLflow registry, the labelled rows.

Everything that differs between a laptop and a deployment reaches assets and sensors through a
resource, built from the settings here or in the domain's own `resources.py`.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from retrain_platform.core.live_comparison import LiveComparison, compare_shadow
from retrain_platform.core.monitoring import AucInterval
from retrain_platform.datasets import DatasetSpec, get_spec
from retrain_platform.datasets.sources import training_rows
from retrain_platform.registry import ModelRegistry
from retrain_platform.scopes import scoped_name, scoped_store_url
from retrain_platform.settings import Settings
from retrain_platform.store import PredictionStore


@dataclass(frozen=True)
class Dataset:
    """One dataset of the deployment, as its assets, jobs and sensors see it (retrain_platform.scopes)."""

    name: str
    scope: str = ""  # empty for the default dataset, else the name

    @property
    def spec(self) -> DatasetSpec:
        return get_spec(self.name)

    def key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.scope, asset] if self.scope else [asset])

    def scoped(self, name: str) -> str:
        """A job's, sensor's or schedule's name as this dataset's."""
        return scoped_name(name, self.scope)

    def own(self, assets: list[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
        """Shared asset definitions as this dataset's: keys (and their deps among them) prefixed by its
        scope. The asset finds its dataset back from its key (`DatasetResource.of`)."""
        if not self.scope:
            return assets
        renamed = {key: dg.AssetKey([self.scope, *key.path]) for asset in assets for key in asset.keys}
        return [asset.with_attributes(asset_key_replacements=renamed) for asset in assets]


class DatasetResource(dg.ConfigurableResource):
    """The default dataset; an asset of another dataset carries that one's name as its key prefix."""

    name: str = "flights"

    def of(self, context: dg.AssetExecutionContext) -> Dataset:
        """The dataset of the asset being materialized."""
        scope = "/".join(context.asset_key.path[:-1])
        return Dataset(scope or self.name, scope)


class LabelledSource(dg.ConfigurableResource):
    """The labelled rows a run reads: the history (vendored, or a Parquet file), cut at
    `history_until`, plus the labelled prediction log of the last `log_window_days` when
    `store_url` is set. Also the log's upkeep: `log_retention_days` (0: kept for ever)."""

    history_path: str = ""
    history_until: str = ""
    store_url: str = ""  # set: runs learn from the labelled prediction log too
    prediction_log_url: str = ""  # the log serving writes, for the champion's realised performance
    log_window_days: int = 0  # 0: every labelled prediction the log keeps
    log_retention_days: int = 0

    def of(self, dataset: Dataset) -> "LabelledSource":
        """This source for a dataset: its own prediction log, learnt from when the deployment or the
        dataset's YAML (`data.prediction_log`) says so; another dataset than the default also has
        its own data as history (`history_path` and `history_until` are the default's)."""
        log_url = scoped_store_url(self.prediction_log_url, dataset.scope) if self.prediction_log_url else ""
        learns = bool(self.store_url) or dataset.spec.learns_from_log
        update = {"store_url": log_url if learns else "", "prediction_log_url": log_url}
        if dataset.scope:
            update |= {"history_path": "", "history_until": ""}
        return self.model_copy(update=update)

    def _store(self) -> PredictionStore | None:
        return PredictionStore(self.store_url) if self.store_url else None

    def read(self, spec: DatasetSpec, window_days: int | None = None) -> pd.DataFrame:
        """The labelled rows; of the log, only the last `window_days` (None: `log_window_days`; 0: all)."""
        store = self._store()
        days = self.log_window_days if window_days is None else window_days
        try:
            # The log's times are the wall clock's (serving's), not the platform clock of a replay.
            since = datetime.now(UTC) - timedelta(days=days) if days else None
            return training_rows(spec, self.history_path, self.history_until, store, since)
        finally:
            if store is not None:
                store.close()

    def label_counts(self, since: datetime) -> tuple[int, int] | None:
        """Predictions logged since `since`, and how many have a label; None when runs do not learn
        from the log."""
        store = self._store()
        if store is None:
            return None
        try:
            return store.label_counts(since)
        finally:
            store.close()

    def _labelled(self, version: str, rows: int) -> pd.DataFrame | None:
        """The newest `rows` labelled predictions of `version`; None without a log."""
        if not self.prediction_log_url:
            return None
        store = PredictionStore(self.prediction_log_url)
        try:
            return store.latest_predictions(rows, model_version=version, labelled=True)
        finally:
            store.close()

    def realised_auc(self, version: str, rows: int = 5_000, min_labels: int = 200) -> float | None:
        """AUC of `version` on its newest labelled predictions; None without a log or enough labels."""
        labelled = self._labelled(version, rows)
        if labelled is None or len(labelled) < min_labels:
            return None
        return AucInterval.of(labelled["label"], labelled["score"]).auc

    def live_comparison(self, champion: str, challenger: str, rows: int = 5_000) -> LiveComparison | None:
        """The challenger's shadow scores against the champion's on the champion's newest labelled
        predictions; None without a log or any such row."""
        labelled = self._labelled(champion, rows)
        return None if labelled is None else compare_shadow(labelled, challenger)

    def label_coverage(self, since: datetime) -> float | None:
        """Share of logged predictions since `since` that have a label; None without a log."""
        counts = self.label_counts(since)
        total, labelled = counts or (0, 0)
        return labelled / total if total else None


    def keep_log(self) -> None:
        """Drop what is past the retention and make the coming days' partitions (see `keep_days`)."""
        if self.prediction_log_url:
            store = PredictionStore(self.prediction_log_url)
            try:
                store.keep_days(self.log_retention_days)
            finally:
                store.close()


class RegistryResource(dg.ConfigurableResource):
    """The MLflow tracking store and model registry."""

    tracking_uri: str
    artifact_root: str
    ui_url: str = "http://127.0.0.1:5000"

    def for_dataset(self, spec: DatasetSpec) -> ModelRegistry:
        return ModelRegistry(self.tracking_uri, spec.model_name)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def version_url(self, model_name: str, version: str) -> str:
        return f"{self.ui_url}/#/models/{model_name}/versions/{version}"


def shared_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        resources={
            "dataset": DatasetResource(name=settings.dataset),
            "source": LabelledSource(
                history_path=settings.history_path,
                history_until=settings.history_until,
                store_url=settings.store_url if settings.train_on_prediction_log else "",
                prediction_log_url=settings.store_url,
                log_window_days=settings.retrain_window_days,
                log_retention_days=settings.log_retention_days,
            ),
            "registry": RegistryResource(
                tracking_uri=settings.tracking_uri, artifact_root=settings.artifact_root, ui_url=settings.mlflow_ui_url
            ),
            "io_manager": dg.FilesystemIOManager(base_dir=str(settings.io_storage_dir)),
        },
        # Steps share one process: the multiprocess executor costs seconds per step here and the
        # stages are sequential anyway.
        executor=dg.in_process_executor,
    )
