"""The monitor job: a drift report of the served traffic and the retraining decision it leads to."""

import dagster as dg

from retrain_platform.names import MONITOR_JOB
from retrain_platform.resources import Dataset

from .assets import drift_report, retraining_decision

MONITORING_ASSETS = [drift_report, retraining_decision]


def monitor_job(dataset: Dataset, assets: list[dg.AssetsDefinition]):
    return dg.define_asset_job(
        dataset.scoped(MONITOR_JOB),
        selection=dg.AssetSelection.assets(*assets),
        description=f"{dataset.name}: drift report of the served traffic and the retraining decision it leads to.",
    )
