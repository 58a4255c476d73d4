"""Jobs and the run tags the platform reads back."""

import json

import dagster as dg

from retrain_platform.assets.evaluation import evaluation_report
from retrain_platform.assets.ingest import raw_data, validated_features
from retrain_platform.assets.monitoring import drift_report, retraining_decision
from retrain_platform.assets.promotion import production_model
from retrain_platform.assets.training import candidate_model, reference_data
from retrain_platform.retrain_history import DECISION_DATE_TAG, RETRAIN_JOB

RETRAIN_ASSETS = [raw_data, validated_features, candidate_model, reference_data, evaluation_report, production_model]
MONITORING_ASSETS = [drift_report, retraining_decision]

# One promotion at a time: the instance limits runs with this tag to one (see dagster.yaml).
PROMOTION_TAG = {"retrain_platform/promotion": "exclusive"}
TRIGGER_TAG = "retrain_platform/trigger"
DECISION_TAG = "retrain_platform/decision_id"

retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Ingest, validate, train, evaluate and promote if every gate passes.",
    tags=PROMOTION_TAG,
)

monitor_job = dg.define_asset_job(
    "monitor",
    selection=dg.AssetSelection.assets(*MONITORING_ASSETS),
    description="Drift report of the served traffic and the retraining decision it leads to.",
)


def retrain_run_config(window_days: int, gates: str = "") -> dict:
    """Run config of the retrains the platform launches itself (sensors, schedules)."""
    ops = {"raw_data": {"config": {"window_days": window_days}}}
    if gates:
        ops["evaluation_report"] = {"config": json.loads(gates)}
    return {"ops": ops}


__all__ = ["DECISION_DATE_TAG", "DECISION_TAG", "PROMOTION_TAG", "TRIGGER_TAG", "monitor_job", "retrain_job"]
