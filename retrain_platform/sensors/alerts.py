"""Failed runs become alerts: a line in alerts.jsonl and, if configured, a webhook POST."""

import json
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx


def alert_for(context: dg.RunFailureSensorContext) -> dict:
    failures = context.get_step_failure_events()
    errors = [e.step_failure_data.error.to_string() for e in failures if e.step_failure_data.error]
    message = "\n".join(errors) or context.failure_event.message or ""
    # A rejected challenger or a bad batch stops a run by design: say so apart from errors.
    rejected = "DagsterAssetCheckFailedError" in message
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": context.dagster_run.run_id,
        "job": context.dagster_run.job_name,
        "kind": "rejected or blocked by checks" if rejected else "error",
        "failed_steps": [e.step_key for e in failures],
        "message": message[:2000],
        "tags": {k: v for k, v in context.dagster_run.tags.items() if k.startswith("retrain_platform/")},
    }


def build_failure_sensor(alerts_file: Path, webhook_url: str) -> dg.SensorDefinition:
    @dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
                           monitor_all_code_locations=False)  # fmt: skip
    def run_failure_alert(context: dg.RunFailureSensorContext):
        """Records every failed run as an alert (and POSTs it to the webhook, if one is set)."""
        alert = alert_for(context)
        alerts_file.parent.mkdir(parents=True, exist_ok=True)
        with alerts_file.open("a") as out:
            out.write(json.dumps(alert) + "\n")
        if webhook_url:
            try:
                httpx.post(webhook_url, json=alert, timeout=5).raise_for_status()
            except httpx.HTTPError as err:  # an unreachable webhook must not stop the alerts file
                context.log.warning(f"alert webhook {webhook_url} failed: {err}")

    return run_failure_alert
