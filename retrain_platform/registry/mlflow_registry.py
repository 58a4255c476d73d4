"""Register candidates, move the `production` alias with history, roll back, load native models.

Promotion is a compare-and-set: the caller names the version it expects in production, and the
alias only moves if that is still true (MLflow has no atomic CAS, so the Dagster side also runs
one promotion at a time by run tag).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from retrain_platform.core import clock
from retrain_platform.core.predictor import Predictor
from retrain_platform.datasets import get_spec

from .flavours import KIND_TAG, LIGHTGBM, log_predictor, read_predictor

PRODUCTION = "production"
CHALLENGER = "challenger"
# A version's `evaluation` tag when it passed offline but waits in shadow for live evidence.
WAITING = "waiting"
HISTORY_TAG = "production_history"
HISTORY_LENGTH = 20
REFERENCE_ARTIFACT = "reference/reference_data.parquet"
HOLDOUT_SCORES_ARTIFACT = "reference/holdout_scores.parquet"


class PromotionConflict(RuntimeError):
    """The production alias moved since the caller looked at it."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    run_id: str | None
    tags: dict[str, str]
    aliases: list[str]
    created_at: datetime | None = None  # when the version was registered (wall clock, as the prediction log's)

    @property
    def threshold(self) -> float:
        return float(self.tags.get("decision_threshold", 0.5))


def now_iso() -> str:
    return clock.now().isoformat(timespec="seconds")


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str) -> str:
    """Create the experiment with an explicit artifact root (MLflow's default is ./mlruns in the cwd)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=f"{artifact_location.rstrip('/')}/{name}")
    except MlflowException:  # created meanwhile by a concurrent run
        return client.get_experiment_by_name(name).experiment_id


class ModelRegistry:
    def __init__(self, tracking_uri: str, model_name: str):
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        # The flavour loaders and log_model only take the fluent, process-wide URI.
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- reading ------------------------------------------------------------------------------
    def version_info(self, version: str) -> VersionInfo:
        mv = self.client.get_model_version(self.model_name, str(version))
        created = datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC) if mv.creation_timestamp else None
        return VersionInfo(str(mv.version), mv.run_id, dict(mv.tags), list(mv.aliases), created)

    def alias_version(self, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.model_name, alias).version)
        except (RestException, MlflowException) as err:
            if "RESOURCE_DOES_NOT_EXIST" in str(err) or "not found" in str(err).lower():
                return None
            raise

    def newest_version(self) -> str | None:
        """The version registered last, promoted or not."""
        versions = self.client.search_model_versions(f"name='{self.model_name}'")
        return str(max(int(v.version) for v in versions)) if versions else None

    def production_version(self) -> str | None:
        return self.alias_version(PRODUCTION)

    def waiting_challenger(self) -> str | None:
        """The challenger serving in shadow until live evidence decides it, if there is one."""
        version = self.alias_version(CHALLENGER)
        if version is None or self.version_info(version).tags.get("evaluation") != WAITING:
            return None
        return version

    def load_predictor(self, version: str) -> Predictor:
        """The version's native predictor, of whichever kind was registered, fed with the features
        and category codes it was trained with. Raises `UnservableVersion`, naming the version, the
        dataset and the features, when the dataset's spec no longer offers what the version needs."""
        info = self.version_info(version)
        # Download through this registry's own URI: the fluent loaders follow the process-wide one.
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=self.client.get_model_version_download_uri(self.model_name, str(version)),
            tracking_uri=self.tracking_uri,
        )
        kind = info.tags.get(KIND_TAG, LIGHTGBM)
        predictor = read_predictor(local, kind, get_spec(info.tags["dataset"]), info.threshold, str(version))
        predictor.mapping.check_servable(predictor.spec, f"{self.model_name} version {version}")
        return predictor

    def run_metrics(self, version: str) -> dict[str, float]:
        info = self.version_info(version)
        return dict(self.client.get_run(info.run_id).data.metrics) if info.run_id else {}

    def window_rows(self, info: VersionInfo) -> int | None:
        """How many labelled rows the version's window held (train, validation and holdout)."""
        params = self.client.get_run(info.run_id).data.params if info.run_id else {}
        rows = [int(value) for name, value in params.items() if name.startswith("rows_")]
        return sum(rows) if rows else None

    def days_since_promotion(self, version: str, now: datetime | None = None) -> float | None:
        promoted_at = self.version_info(version).tags.get("promoted_at")
        if not promoted_at:
            return None
        return ((now or clock.now()) - datetime.fromisoformat(promoted_at)).total_seconds() / 86_400

    def history(self) -> list[dict]:
        model = self.client.get_registered_model(self.model_name)
        return json.loads(model.tags.get(HISTORY_TAG, "[]"))

    # -- writing ------------------------------------------------------------------------------
    def register_challenger(self, predictor: Predictor, tags: dict[str, str], example_rows: pd.DataFrame) -> str:
        """Log the model in the active MLflow run, register it as a new version, alias `challenger`.

        `example_rows` are a few raw rows, the input example of the logged model."""
        info = log_predictor(predictor, self.model_name, example_rows)
        version = str(info.registered_model_version)
        all_tags = {**tags, "dataset": predictor.spec.name, "decision_threshold": repr(predictor.threshold),
                    KIND_TAG: predictor.kind}  # fmt: skip
        for key, value in all_tags.items():
            self.client.set_model_version_tag(self.model_name, version, key, str(value))
        self.client.set_registered_model_alias(self.model_name, CHALLENGER, version)
        return version

    def clear_challenger(self, version: str) -> bool:
        """Take the `challenger` alias off a rejected version (serving stops shadow-scoring it);
        False when the alias has moved on to another version meanwhile."""
        if self.alias_version(CHALLENGER) != str(version):
            return False
        self.client.delete_registered_model_alias(self.model_name, CHALLENGER)
        return True

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, str(version), key, str(value))

    def log_file(self, run_id: str, content: bytes, artifact: str) -> str:
        """Store bytes as a run artifact at the path `artifact` (folder/name)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact).name
            path.write_bytes(content)
            self.client.log_artifact(run_id, str(path), artifact_path=str(Path(artifact).parent))
        return f"runs:/{run_id}/{artifact}"

    def log_reference(self, run_id: str, frame: pd.DataFrame) -> str:
        return self.log_file(run_id, frame.to_parquet(index=False), REFERENCE_ARTIFACT)

    def load_reference(self, version: str) -> pd.DataFrame:
        return self._load_frame(version, REFERENCE_ARTIFACT)

    def log_holdout_scores(self, run_id: str, frame: pd.DataFrame) -> str:
        """The version's scores and labels on its holdout: rows it never trained on, which calibrate
        its scores for performance estimation."""
        return self.log_file(run_id, frame.to_parquet(index=False), HOLDOUT_SCORES_ARTIFACT)

    def load_holdout_scores(self, version: str) -> pd.DataFrame | None:
        """None for a version registered before holdout scores were kept."""
        try:
            return self._load_frame(version, HOLDOUT_SCORES_ARTIFACT)
        except (MlflowException, OSError):
            return None

    def _load_frame(self, version: str, artifact: str) -> pd.DataFrame:
        info = self.version_info(version)
        local = mlflow.artifacts.download_artifacts(run_id=info.run_id, artifact_path=artifact,
                                                    tracking_uri=self.tracking_uri)
        return pd.read_parquet(local)

    def promote(self, version: str, expected_current: str | None, tags: dict[str, str] | None = None) -> str | None:
        """Move `production` to `version` if production is still `expected_current`; return the previous."""
        current = self.production_version()
        if current != expected_current:
            raise PromotionConflict(
                f"production is version {current}, not {expected_current} as evaluated; re-run the evaluation"
            )
        at = now_iso()
        self.tag_version(version, {**(tags or {}), "promoted_at": at, "previous_production": current or ""})
        self.client.set_registered_model_alias(self.model_name, PRODUCTION, str(version))
        self._append_history({"action": "promote", "version": str(version), "previous": current, "at": at})
        return current

    def rollback(self, to_version: str | None = None) -> tuple[str, str]:
        """Put the version that production replaced (or `to_version`) back; return (from, to)."""
        current = self.production_version()
        if current is None:
            raise PromotionConflict("nothing to roll back: no version has the production alias")
        target = to_version or self.version_info(current).tags.get("previous_production")
        if not target:
            raise PromotionConflict(f"version {current} replaced no earlier version; give a version to roll back to")
        self.version_info(target)  # fails loudly if the version does not exist
        at = now_iso()
        self.tag_version(current, {"rolled_back_at": at})
        # The target keeps its own previous_production, so a second rollback walks further back.
        self.tag_version(target, {"promoted_at": at})
        self.client.set_registered_model_alias(self.model_name, PRODUCTION, str(target))
        self._append_history({"action": "rollback", "version": str(target), "previous": current, "at": at})
        return current, str(target)

    def _append_history(self, entry: dict) -> None:
        history = (self.history() + [entry])[-HISTORY_LENGTH:]
        self.client.set_registered_model_tag(self.model_name, HISTORY_TAG, json.dumps(history))
