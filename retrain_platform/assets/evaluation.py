"""Evaluation: champion and challenger scored on the same recent holdout, every gate explained."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from retrain_platform.core.gates import (
    Evidence,
    GateConfig,
    all_passed,
    days_between,
    evaluate_gates,
    failed,
    gates_as_dicts,
    gates_markdown,
)
from retrain_platform.core.metrics import classification_metrics
from retrain_platform.core.plots import markdown_image, roc_png
from retrain_platform.core.predictor import is_deterministic, one_row_latency_ms
from retrain_platform.core.split import time_split
from retrain_platform.resources import DatasetResource, HistorySource, RegistryResource

from .metadata import metrics_table

GATES_CHECK = "gates_passed"


class GateSettings(dg.Config):
    min_f1_improvement: float = GateConfig.min_f1_improvement
    max_brier_degradation: float = GateConfig.max_brier_degradation
    min_holdout_rows: int = GateConfig.min_holdout_rows
    min_label_coverage: float = GateConfig.min_label_coverage
    cooldown_days: float = GateConfig.cooldown_days
    max_latency_ms: float = GateConfig.max_latency_ms
    auc_floor: float | None = None  # None: the dataset spec's floor
    recall_floor: float | None = None


@dg.asset(
    group_name="evaluation",
    kinds={"mlflow"},
    check_specs=[
        dg.AssetCheckSpec(GATES_CHECK, asset="evaluation_report", blocking=True,
                          description="Every promotion gate passed or does not apply."),
    ],  # fmt: skip
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: GateSettings,
    candidate_model: dict,
    validated_features: pd.DataFrame,
    dataset: DatasetResource,
    source: HistorySource,
    registry: RegistryResource,
):
    """Champion vs challenger on the newest holdout rows, with each gate's value, threshold and verdict."""
    spec = dataset.spec
    reg = registry.for_dataset(spec)
    holdout = time_split(validated_features, spec, candidate_model["validation_fraction"], candidate_model["holdout_fraction"]).holdout
    labels = holdout[spec.target]
    challenger = reg.load_predictor(candidate_model["version"])
    challenger_scores = challenger.scores(holdout)
    curves = {f"challenger v{challenger.version}": challenger_scores}
    champion_version = reg.production_version()
    champion_metrics = days_since = None
    if champion_version is not None:
        champion = reg.load_predictor(champion_version)
        curves[f"champion v{champion_version}"] = champion_scores = champion.scores(holdout)
        champion_metrics = classification_metrics(labels, champion_scores, champion.threshold)
        promoted_at = reg.version_info(champion_version).tags.get("promoted_at")
        if promoted_at:
            days_since = days_between(datetime.fromisoformat(promoted_at), datetime.now(UTC))
    challenger_metrics = classification_metrics(labels, challenger_scores, challenger.threshold)
    evidence = Evidence(
        challenger=challenger_metrics,
        champion=champion_metrics,
        holdout_rows=len(holdout),
        label_coverage=source.label_coverage(spec),
        days_since_promotion=days_since,
        deterministic=is_deterministic(challenger, holdout),
        latency_ms=one_row_latency_ms(challenger, holdout),
    )
    gates = evaluate_gates(evidence, GateConfig(**config.model_dump()), spec.auc_floor, spec.recall_floor)
    passed, failures = all_passed(gates), failed(gates)
    verdict = "promote" if passed else f"reject: {', '.join(failures)} failed"
    reg.tag_version(challenger.version, {"evaluation": "passed" if passed else "rejected",
                                         "failed_gates": ",".join(failures), "champion_at_evaluation": champion_version or ""})  # fmt: skip
    png = roc_png(labels, curves)
    reg.log_file(candidate_model["mlflow_run_id"], png, "evaluation/roc.png")
    report = {
        "challenger_version": challenger.version,
        "champion_version": champion_version,
        "passed": passed,
        "failed_gates": failures,
        "gates": gates_as_dicts(gates),
        "challenger_metrics": challenger_metrics,
        "champion_metrics": champion_metrics,
        "data_window": candidate_model["data_window"],
    }
    context.log.info(f"challenger v{challenger.version} vs champion v{champion_version}: {verdict}")
    yield dg.Output(
        report,
        metadata={
            "verdict": verdict,
            "challenger_version": challenger.version,
            "champion_version": champion_version or "none",
            "holdout_rows": len(holdout),
            "gates": dg.MetadataValue.md(gates_markdown(gates)),
            "metrics": dg.MetadataValue.md(metrics_table({"challenger": challenger_metrics, "champion": champion_metrics})),
            "roc": dg.MetadataValue.md(markdown_image(png, "ROC curves")),
        },
    )
    yield dg.AssetCheckResult(
        check_name=GATES_CHECK,
        passed=passed,
        description=verdict,
        metadata={"failed_gates": failures, "gates": dg.MetadataValue.md(gates_markdown(gates))},
    )

