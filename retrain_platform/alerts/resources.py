"""Where alerts go: a JSON line each in alerts.jsonl, and a webhook when one is set."""

import json
from pathlib import Path

import dagster as dg


class AlertsResource(dg.ConfigurableResource):
    alerts_file: str
    webhook_url: str = ""  # failed runs are also POSTed here as JSON

    def record(self, alert: dict) -> None:
        path = Path(self.alerts_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:  # one write of one line: lines never interleave
            out.write(json.dumps(alert) + "\n")
