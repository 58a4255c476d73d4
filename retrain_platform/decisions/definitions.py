"""Decisions: the decisions folder, the retrain policy, the decision-file sensor, the weekly retrain."""

import dagster as dg

from retrain_platform.resources import Dataset
from retrain_platform.settings import Settings

from .resources import DecisionsResource
from .schedules import build_weekly_retrain
from .sensors import build_decision_sensor


def decisions_definitions(settings: Settings, dataset: Dataset) -> dg.Definitions:
    return dg.Definitions(
        sensors=[build_decision_sensor(dataset, settings.decision_sensor_seconds)],
        schedules=[build_weekly_retrain(dataset)],
    )


def decisions_resources(settings: Settings) -> dict:
    """The default dataset's; another's folder is derived (`DecisionsResource.in_scope`)."""
    return {
        "decisions": DecisionsResource(
            folder=str(settings.decisions_dir),
            cooldown_hours=settings.retrain_cooldown_hours,
            max_per_week=settings.max_retrains_per_week,
            retrain_window_days=settings.retrain_window_days,
            retrain_gates=settings.retrain_gates,
        ),
    }
