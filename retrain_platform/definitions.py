"""The platform's Dagster definitions: one room per domain, merged. Each domain's folder holds its
assets, checks, jobs, sensors, schedules and resources; `resources.py` holds the ones they share."""

import dagster as dg

from retrain_platform.alerts.definitions import alerts_definitions
from retrain_platform.decisions.definitions import decisions_definitions
from retrain_platform.monitoring.definitions import monitoring_definitions
from retrain_platform.resources import shared_definitions
from retrain_platform.settings import Settings
from retrain_platform.training.definitions import training_definitions


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions.merge(
        shared_definitions(settings),  # dataset, registry, labelled source, storage, executor
        training_definitions(settings),  # raw_data -> ... -> production_model; retrain and rollback jobs
        monitoring_definitions(settings),  # drift_report, retraining_decision; drift sensor, daily run
        decisions_definitions(settings),  # decisions inbox sensor, weekly retrain, retrain policy
        alerts_definitions(settings),  # failed runs -> alerts.jsonl and webhook
    )


defs = build_definitions(Settings.from_env())
