"""Record a trained candidate in the active MLflow run and register it as the challenger."""

from __future__ import annotations

from retrain_platform.core.training import TrainedModel

from .mlflow_registry import ModelRegistry


def _prefixed(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{name}": value for name, value in metrics.items()}


def record_candidate(tracker, registry: ModelRegistry, trained: TrainedModel, window: str, tags: dict[str, str], example_rows) -> str:
    """`tracker` is the fluent mlflow module or dagster-mlflow's MlFlow (same methods); returns the version.

    Every candidate's validation figures land as `candidate_<kind>_validation_<metric>`, the choice
    and its reason as tags; `validation_*` are the chosen kind's before its refit."""
    run = tracker.active_run()
    params = {k: ("" if v is None else v) for k, v in trained.params.items()}
    tracker.log_params({**params, **{f"rows_{k}": v for k, v in trained.rows.items()}, "data_window": window})
    candidates = {}
    for candidate in trained.candidates:
        candidates |= _prefixed(f"candidate_{candidate.kind}_validation", candidate.validation_metrics)
    tracker.log_metrics({
        **_prefixed("validation", trained.validation_metrics),
        **_prefixed("holdout", trained.holdout_metrics),
        **candidates,
        "trees": trained.trees,
    })  # fmt: skip
    tracker.log_dict(trained.candidates_table(), "candidates/validation.json")
    tracker.set_tags({"dataset": trained.predictor.spec.name, "data_window": window,
                      "model_kind": trained.chosen, "model_choice": trained.reason})  # fmt: skip
    # What serves: the fit that learned the holdout too, when there is one.
    return registry.register_challenger(
        trained.served,
        tags={**tags, "data_window": window, "mlflow_run_id": run.info.run_id},
        example_rows=example_rows,
    )
