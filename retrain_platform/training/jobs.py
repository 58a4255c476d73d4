"""The retrain job, and the run config of the retrains the platform launches by itself."""

import dagster as dg

from retrain_platform.core.gates import GateConfig
from retrain_platform.names import EVALUATION_ASSET, PRODUCTION_ASSET, PROMOTION_TAGS, REEVALUATE_JOB, RETRAIN_JOB
from retrain_platform.resources import Dataset

from .candidate import candidate_model, reference_data
from .evaluation import evaluation_report
from .ingest import raw_data, validated_features
from .promotion import production_model

RETRAIN_ASSETS = [raw_data, validated_features, candidate_model, reference_data, evaluation_report, production_model]


def training_jobs(dataset: Dataset, assets: list[dg.AssetsDefinition]) -> list:
    """The retrain job on a dataset's own training assets, and the re-evaluation of its waiting challenger."""
    keys = [dataset.key(EVALUATION_ASSET), dataset.key(PRODUCTION_ASSET)]
    return [
        dg.define_asset_job(
            dataset.scoped(RETRAIN_JOB),
            selection=dg.AssetSelection.assets(*assets),
            description=f"{dataset.name}: ingest, validate, train, evaluate and promote if every gate passes.",
            tags=PROMOTION_TAGS,
        ),
        # The newest candidate, stored by its retrain, evaluated again with the live evidence gathered
        # since: a challenger that waited in shadow is promoted or rejected without training again.
        dg.define_asset_job(
            dataset.scoped(REEVALUATE_JOB),
            selection=dg.AssetSelection.assets(*keys),
            description=f"{dataset.name}: evaluate the waiting challenger again, now with its live evidence; "
            "promote it if every gate passes.",
            tags=PROMOTION_TAGS,
        ),
    ]


def reevaluate_run_config(gates: GateConfig | None = None) -> dict:
    """Run config of a re-evaluation the platform launches itself: the gates, if not the defaults."""
    return {"ops": {EVALUATION_ASSET: {"config": gates.model_dump(exclude_defaults=True)}}} if gates else {"ops": {}}


def retrain_run_config(window_days: int, gates: GateConfig | None = None) -> dict:
    """Run config of the retrains the platform launches itself (sensors, schedules)."""
    config = reevaluate_run_config(gates)
    config["ops"][raw_data.key.to_user_string()] = {"config": {"window_days": window_days}}
    return config
