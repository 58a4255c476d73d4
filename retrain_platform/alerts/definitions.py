"""Alerts: every failed run on file, and POSTed to a webhook when one is set."""

import dagster as dg

from retrain_platform.settings import Settings

from .resources import AlertsResource
from .sensors import run_failure_alert


def alerts_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        sensors=[run_failure_alert],
        resources={
            "alerts": AlertsResource(alerts_file=str(settings.alerts_file), webhook_url=settings.alert_webhook_url)
        },
    )
