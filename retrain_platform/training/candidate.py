"""Training: LightGBM and a logistic model compete on validation rows; the winner, refit on train +
validation, is judged on the holdout, then (by default) fit on the holdout too, tracked in MLflow
and registered as the challenger."""

import dagster as dg
import pandas as pd

from retrain_platform.core.split import reference_rows, time_split
from retrain_platform.core.training import KINDS, TrainParams, train_candidate
from retrain_platform.core.window import Window
from retrain_platform.registry import PRODUCTION
from retrain_platform.registry.tracking import record_candidate
from retrain_platform.resources import DatasetResource, RegistryResource

from .metadata import candidates_markdown, metrics_table
from .resources import MlflowTracking, experiment_name


class TrainConfig(dg.Config):
    learning_rate: float = 0.05
    num_leaves: int = 31
    max_rounds: int = 600
    validation_fraction: float = 0.15
    holdout_fraction: float = 0.15
    model_kinds: list[str] = list(KINDS)  # those that compete on the validation rows
    refit: bool = True  # learn train + validation once chosen
    # Then fit the same recipe on the holdout too: the model that serves learns the newest labels;
    # the gates judge the fit that never saw the holdout (its holdout scores are kept).
    learn_holdout: bool = True
    recency_half_life_days: float = 0.0  # 0: every row weighs the same

    def params(self) -> TrainParams:
        return TrainParams(
            learning_rate=self.learning_rate, num_leaves=self.num_leaves, max_rounds=self.max_rounds,
            kinds=tuple(self.model_kinds), refit=self.refit, learn_holdout=self.learn_holdout,
            recency_half_life_days=self.recency_half_life_days or None,
        )  # fmt: skip


def data_window(frame: pd.DataFrame) -> str:
    return Window.of(frame).label()


@dg.asset(group_name="training", kinds={"lightgbm", "scikitlearn", "mlflow"})
def candidate_model(
    context: dg.AssetExecutionContext,
    config: TrainConfig,
    validated_features: pd.DataFrame,
    dataset: DatasetResource,
    registry: RegistryResource,
    mlflow_tracking: dg.ResourceParam[MlflowTracking],
) -> dg.Output[dict]:
    """The best of LightGBM and a logistic model on validation, refit and registered as the challenger."""
    spec = dataset.of(context).spec
    split = time_split(validated_features, spec, config.validation_fraction, config.holdout_fraction)
    params = config.params()
    window = data_window(validated_features)
    mlflow = mlflow_tracking.start(experiment_name(spec.name))
    run = mlflow.active_run()
    try:
        trained = train_candidate(split, spec, params)
        reg = registry.for_dataset(spec)
        version = record_candidate(
            mlflow, reg, trained, window,
            tags={"dagster_run_id": context.run.run_id},
            example_rows=split.holdout.head(3),
        )  # fmt: skip
        # The holdout as the gates judge it: scored by the fit that never learned it.
        holdout = split.holdout
        reg.log_holdout_scores(run.info.run_id, pd.DataFrame({"score": trained.predictor.scores(holdout),
                                                              "label": holdout[spec.target].to_numpy()}))  # fmt: skip
        mlflow.end_run()
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    candidate = {
        "version": version,
        "mlflow_run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "data_window": window,
        "validation_fraction": config.validation_fraction,
        "holdout_fraction": config.holdout_fraction,
    }
    return dg.Output(
        candidate,
        metadata={
            "registered_version": version,
            "model_uri": f"models:/{spec.model_name}/{version}",
            "mlflow_run_id": run.info.run_id,
            "mlflow_run": dg.MetadataValue.url(registry.run_url(run.info.experiment_id, run.info.run_id)),
            "model_version": dg.MetadataValue.url(registry.version_url(spec.model_name, version)),
            "data_window": window,
            "rows": trained.rows,
            "model_kind": trained.chosen,
            "chosen_because": trained.reason,
            "trees": trained.trees,
            "learned_holdout": trained.final is not None,
            "decision_threshold": trained.predictor.threshold,
            "holdout_auc": trained.holdout_metrics["auc"],
            "candidates": dg.MetadataValue.md(candidates_markdown(trained)),
            "metrics": dg.MetadataValue.md(
                metrics_table({
                    f"{trained.chosen} (validation, before refit)": trained.validation_metrics,
                    f"{trained.chosen} (holdout)": trained.holdout_metrics,
                })  # fmt: skip
            ),
        },
    )


@dg.asset(group_name="monitoring", kinds={"pandas", "mlflow"})
def reference_data(
    context: dg.AssetExecutionContext, candidate_model: dict, validated_features: pd.DataFrame,
    dataset: DatasetResource, registry: RegistryResource,
) -> dg.Output[pd.DataFrame]:  # fmt: skip
    """What the candidate learned from before its holdout, with its scores: the drift baseline of that version."""
    spec = dataset.of(context).spec
    split = time_split(validated_features, spec, candidate_model["validation_fraction"], candidate_model["holdout_fraction"])
    reference = reference_rows(split)
    reg = registry.for_dataset(spec)
    predictor = reg.load_predictor(candidate_model["version"])
    reference = reference.assign(prediction=predictor.scores(reference))
    uri = reg.log_reference(candidate_model["mlflow_run_id"], reference)
    return dg.Output(
        reference,
        metadata={
            "dagster/row_count": len(reference),
            "model_version": candidate_model["version"],
            "artifact_uri": uri,
            "used_when": f"drift checks while version {candidate_model['version']} has the {PRODUCTION} alias",
        },
    )
