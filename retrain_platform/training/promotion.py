"""Promotion: move the `production` alias to a challenger that passed every gate, or roll back."""

import json

import dagster as dg

from retrain_platform.names import PRODUCTION_ASSET, PROMOTION_POOL, PROMOTION_TAGS, ROLLBACK_JOB
from retrain_platform.registry import PRODUCTION
from retrain_platform.resources import Dataset, DatasetResource, RegistryResource



# Not required: a challenger waiting in shadow for live evidence leaves production as it is,
# and the run succeeds without materializing it.
@dg.asset(group_name="deployment", kinds={"mlflow"}, pool=PROMOTION_POOL, output_required=False)
def production_model(
    context: dg.AssetExecutionContext, evaluation_report: dict, dataset: DatasetResource, registry: RegistryResource
):
    """The registry's production alias, moved to the challenger only when every gate passed."""
    if evaluation_report.get("waiting"):
        context.log.info(f"challenger v{evaluation_report['challenger_version']} waits in shadow for live evidence; "
                         "production is unchanged")  # fmt: skip
        return
    if not evaluation_report["passed"]:
        # The blocking gates check normally stops the run before this; never promote regardless.
        raise dg.Failure(f"challenger rejected by gates: {', '.join(evaluation_report['failed_gates'])}")
    spec = dataset.of(context).spec
    version = evaluation_report["challenger_version"]
    verdicts = {g["name"]: g["verdict"] for g in evaluation_report["gates"]}
    previous = registry.for_dataset(spec).promote(
        version,
        expected_current=evaluation_report["champion_version"],
        tags={"promoted_by_run": context.run.run_id, "gate_verdicts": json.dumps(verdicts)},
    )
    yield dg.MaterializeResult(
        metadata={
            "version": version,
            "previous_version": previous or "none",
            "model_uri": f"models:/{spec.model_name}@{PRODUCTION}",
            "data_window": evaluation_report["data_window"],
            "model_version": dg.MetadataValue.url(registry.version_url(spec.model_name, version)),
            "mlflow_run": dg.MetadataValue.url(registry.run_url(evaluation_report["experiment_id"], evaluation_report["mlflow_run_id"])),
            "holdout_auc": evaluation_report["challenger_metrics"]["auc"],
        }
    )


class RollbackConfig(dg.Config):
    to_version: str = ""  # empty: the version the current production replaced


def build_rollback_job(dataset: Dataset) -> dg.JobDefinition:
    @dg.op(name=dataset.scoped("rollback_production"), out={}, pool=PROMOTION_POOL)
    def rollback_production(context: dg.OpExecutionContext, config: RollbackConfig, registry: RegistryResource):
        """Put the previous production version back in one step."""
        spec = dataset.spec
        rolled_back, restored = registry.for_dataset(spec).rollback(config.to_version or None)
        context.log.info(f"production alias moved back from version {rolled_back} to {restored}")
        yield dg.AssetMaterialization(
            dataset.key(PRODUCTION_ASSET),
            description=f"rollback from version {rolled_back}",
            metadata={"version": restored, "rolled_back_version": rolled_back, "action": "rollback",
                      "model_version": dg.MetadataValue.url(registry.version_url(spec.model_name, restored))},
        )  # fmt: skip

    @dg.job(name=dataset.scoped(ROLLBACK_JOB), tags=PROMOTION_TAGS)
    def rollback_job():
        """Move the production alias back to the version it replaced."""
        rollback_production()

    return rollback_job
