"""Evaluation: champion and challenger scored on the same recent holdout, every gate explained."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from retrain_platform.core.evaluation import evaluate_challenger
from retrain_platform.core.feature_mapping import UnservableVersion
from retrain_platform.core.gates import GateConfig, dataset_gates, gates_as_dicts, gates_markdown
from retrain_platform.core.plots import markdown_image
from retrain_platform.core.split import learned_until, time_split, unseen_rows
from retrain_platform.names import EVALUATION_ASSET, FORCE_TAG, CHALLENGER_TAG, GATES_CHECK
from retrain_platform.registry import WAITING
from retrain_platform.resources import DatasetResource, LabelledSource, RegistryResource

from .metadata import metrics_table

class GateSettings(dg.Config, GateConfig):
    """The gates of this run (launchpad: ops.evaluation_report.config); see GateConfig."""


def importance_markdown(importance: dict[str, float]) -> str:
    """The model's global importance as each feature's share of the total, largest first."""
    total = sum(importance.values()) or 1.0
    lines = ["| feature | share |", "|---|---:|"]
    lines += [f"| {name} | {value / total:.1%} |" for name, value in sorted(importance.items(), key=lambda kv: -kv[1])]
    return "\n".join(lines)


@dg.asset(
    group_name="evaluation",
    kinds={"mlflow"},
    check_specs=[
        dg.AssetCheckSpec(GATES_CHECK, asset=EVALUATION_ASSET, blocking=True,
                          description="Every promotion gate passed or does not apply."),
    ],  # fmt: skip
)
def evaluation_report(
    context: dg.AssetExecutionContext,
    config: GateSettings,
    candidate_model: dict,
    validated_features: pd.DataFrame,
    dataset: DatasetResource,
    source: LabelledSource,
    registry: RegistryResource,
):
    """Champion vs challenger on the newest holdout rows, with each gate's value, threshold and verdict."""
    ds = dataset.of(context)
    spec, source = ds.spec, source.of(ds)
    gates = dataset_gates(spec.gates, config)
    reg = registry.for_dataset(spec)
    holdout = time_split(validated_features, spec, candidate_model["validation_fraction"], candidate_model["holdout_fraction"]).holdout
    champion_version = reg.production_version()
    challenger_version = candidate_model["version"]
    expected = context.run.tags.get(CHALLENGER_TAG)
    if expected and expected != challenger_version:
        raise dg.Failure(f"this run re-evaluates challenger v{expected}, but the stored candidate is "
                         f"v{challenger_version}: a newer retrain replaced it")  # fmt: skip
    judged = reg.load_holdout_scores(challenger_version)  # None for versions from before they were kept
    scores = None if judged is None else judged["score"].to_numpy()
    learned = learned_until(reg.version_info(champion_version).tags.get("data_window")) if champion_version else None
    unseen, judged_on = unseen_rows(holdout, spec, learned, gates.min_holdout_rows)
    holdout, scores = holdout[unseen], None if scores is None else scores[unseen.to_numpy()]
    challenger = reg.load_predictor(challenger_version)
    champion, unservable = None, None
    if champion_version:
        try:
            champion = reg.load_predictor(champion_version)
        except UnservableVersion as err:  # the spec lost what it needs: it must not block its successor
            unservable = str(err)
            context.log.warning(f"{unservable}; the challenger is judged by the floors alone")
    evaluation = evaluate_challenger(
        challenger=challenger,
        challenger_scores=scores,
        champion=champion,
        holdout=holdout,
        config=gates,
        label_coverage=source.label_coverage(since=datetime.now(UTC) - timedelta(days=gates.label_coverage_days)),
        days_since_promotion=reg.days_since_promotion(champion_version) if champion_version else None,
        champion_realised_auc=source.realised_auc(champion_version) if champion_version else None,
        forced=context.run.tags.get(FORCE_TAG) == "true",
        live=source.live_comparison(champion_version, challenger_version) if champion_version else None,
    )
    gates, verdict = evaluation.gates, evaluation.verdict
    reg.tag_version(challenger_version, {
        "evaluation": "passed" if evaluation.passed else WAITING if evaluation.waiting else "rejected",
        "failed_gates": ",".join(evaluation.failed_gates),
        "champion_at_evaluation": champion_version or "",
        # Both on the challenger's holdout: whether a promotion ever lowered AUC can be read back.
        "holdout_auc": f"{evaluation.challenger_metrics['auc']:.6f}",
        "champion_holdout_auc": f"{evaluation.champion_metrics['auc']:.6f}" if evaluation.champion_metrics else "",
    })  # fmt: skip
    if not (evaluation.passed or evaluation.waiting):  # serving stops shadow-scoring it
        reg.clear_challenger(challenger_version)
    reg.log_file(candidate_model["mlflow_run_id"], evaluation.roc_png, "evaluation/roc.png")
    report = {
        "challenger_version": challenger_version,
        "champion_version": champion_version,
        "passed": evaluation.passed,
        "waiting": evaluation.waiting,
        "failed_gates": evaluation.failed_gates,
        "gates": gates_as_dicts(gates),
        "challenger_metrics": evaluation.challenger_metrics,
        "champion_metrics": evaluation.champion_metrics,
        "data_window": candidate_model["data_window"],
        "judged_on": judged_on,
        "mlflow_run_id": candidate_model["mlflow_run_id"],
        "experiment_id": candidate_model["experiment_id"],
    }
    champion = f"champion v{champion_version}" if champion_version else "no champion"
    context.log.info(f"challenger v{challenger_version} vs {champion}: {verdict}" + (f" ({judged_on})" if judged_on else ""))
    yield dg.Output(
        report,
        metadata={
            "verdict": verdict,
            "challenger_version": challenger_version,
            "champion_version": champion_version or "none",
            **({"champion_unservable": unservable} if unservable else {}),
            **({"judged_on": judged_on} if judged_on else {}),
            "holdout_rows": len(holdout),
            "gates": dg.MetadataValue.md(gates_markdown(gates)),
            "metrics": dg.MetadataValue.md(metrics_table({"challenger": evaluation.challenger_metrics,
                                                          "champion": evaluation.champion_metrics})),
            "roc": dg.MetadataValue.md(markdown_image(evaluation.roc_png, "ROC curves")),
            "challenger_importance": dg.MetadataValue.md(importance_markdown(challenger.importance())),
        },
    )
    yield dg.AssetCheckResult(
        check_name=GATES_CHECK,
        passed=evaluation.passed,
        # A waiting challenger is no failure of the run: production stays, the challenger shadows.
        severity=dg.AssetCheckSeverity.WARN if evaluation.waiting else dg.AssetCheckSeverity.ERROR,
        description=verdict,
        metadata={"failed_gates": evaluation.failed_gates, "gates": dg.MetadataValue.md(gates_markdown(gates))},
    )

