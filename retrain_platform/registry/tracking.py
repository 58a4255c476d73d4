"""Record a trained candidate in the active MLflow run and register it as the challenger."""

from __future__ import annotations

from retrain_platform.core.training import TrainedModel

from .mlflow_registry import ModelRegistry


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{name}": value for name, value in metrics.items()}


def record_candidate(tracker, registry: ModelRegistry, trained: TrainedModel, window: str, tags: dict[str, str], example_rows) -> str:
    """`tracker` is the fluent mlflow module or dagster-mlflow's MlFlow (same methods); returns the version."""
    run = tracker.active_run()
    tracker.log_params({**trained.params, **{f"rows_{k}": v for k, v in trained.rows.items()}, "data_window": window})
    tracker.log_metrics({
        **_prefixed("validation", trained.validation_metrics),
        **_prefixed("holdout", trained.holdout_metrics),
        **_prefixed("baseline_holdout", trained.baseline_holdout_metrics),
        "best_iteration": trained.best_iteration,
    })  # fmt: skip
    tracker.set_tags({"dataset": trained.predictor.spec.name, "data_window": window})
    return registry.register_challenger(
        trained.predictor,
        tags={**tags, "data_window": window, "mlflow_run_id": run.info.run_id},
        example_rows=example_rows,
    )
