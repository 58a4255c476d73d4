"""The monitor job: a drift report of the served traffic and the retraining decision it leads to."""

import dagster as dg

from retrain_platform.names import MONITOR_JOB

from .assets import drift_report, retraining_decision

MONITORING_ASSETS = [drift_report, retraining_decision]

monitor_job = dg.define_asset_job(
    MONITOR_JOB,
    selection=dg.AssetSelection.assets(*MONITORING_ASSETS),
    description="Drift report of the served traffic and the retraining decision it leads to.",
)
