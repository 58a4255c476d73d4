"""The retrain job, and the run config of the retrains the platform launches by itself."""

import dagster as dg

from retrain_platform.core.gates import GateConfig
from retrain_platform.names import EVALUATION_ASSET, PROMOTION_TAGS, REEVALUATE_JOB, RETRAIN_JOB

from .candidate import candidate_model, reference_data
from .evaluation import evaluation_report
from .ingest import raw_data, validated_features
from .promotion import production_model

RETRAIN_ASSETS = [raw_data, validated_features, candidate_model, reference_data, evaluation_report, production_model]

retrain_job = dg.define_asset_job(
    RETRAIN_JOB,
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Ingest, validate, train, evaluate and promote if every gate passes.",
    tags=PROMOTION_TAGS,
)

# The newest candidate, stored by its retrain, evaluated again with the live evidence gathered
# since: a challenger that waited in shadow is promoted or rejected without training again.
reevaluate_job = dg.define_asset_job(
    REEVALUATE_JOB,
    selection=dg.AssetSelection.assets(evaluation_report, production_model),
    description="Evaluate the waiting challenger again, now with its live evidence; promote it if every gate passes.",
    tags=PROMOTION_TAGS,
)


def reevaluate_run_config(gates: GateConfig | None = None) -> dict:
    """Run config of a re-evaluation the platform launches itself: the gates, if not the defaults."""
    return {"ops": {EVALUATION_ASSET: {"config": gates.model_dump(exclude_defaults=True)}}} if gates else {"ops": {}}


def retrain_run_config(window_days: int, gates: GateConfig | None = None) -> dict:
    """Run config of the retrains the platform launches itself (sensors, schedules)."""
    config = reevaluate_run_config(gates)
    config["ops"][raw_data.key.to_user_string()] = {"config": {"window_days": window_days}}
    return config
