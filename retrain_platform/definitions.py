"""The platform's Dagster definitions: one room per domain, merged, for every dataset side by side.

Each domain's folder holds its assets, checks, jobs, sensors, schedules and resources; `resources.py`
holds the ones they share. Every dataset of the deployment gets its own copy of each domain's
assets (key prefix: its name), jobs, sensors and schedules, all in this one code location; the
default dataset's carry no prefix (see retrain_platform.scopes). Resources are built once, for the
default dataset, and each asset or sensor takes them into its dataset's scope.
"""

import dagster as dg

from retrain_platform.alerts.definitions import alerts_definitions
from retrain_platform.decisions.definitions import decisions_definitions, decisions_resources
from retrain_platform.monitoring.definitions import monitoring_definitions, monitoring_resources
from retrain_platform.resources import Dataset, shared_definitions
from retrain_platform.settings import Settings
from retrain_platform.training.definitions import training_definitions, training_resources


def dataset_definitions(settings: Settings, dataset: Dataset) -> dg.Definitions:
    return dg.Definitions.merge(
        training_definitions(dataset),  # raw_data -> ... -> production_model; retrain, re-evaluation, rollback
        monitoring_definitions(settings, dataset),  # drift_report, retraining_decision, model_health; sensors, daily run
        decisions_definitions(settings, dataset),  # decisions inbox sensor, weekly retrain
    )


def build_definitions(settings: Settings) -> dg.Definitions:
    datasets = [Dataset(name, settings.scope(name)) for name in settings.dataset_names()]
    resources = {**training_resources(settings), **monitoring_resources(settings), **decisions_resources(settings)}
    return dg.Definitions.merge(
        shared_definitions(settings),  # dataset, registry, labelled source, storage, executor
        dg.Definitions(resources=resources),
        alerts_definitions(settings),  # failed runs of any dataset -> alerts.jsonl and webhook
        *(dataset_definitions(settings, dataset) for dataset in datasets),
    )


defs = build_definitions(Settings.from_env())
