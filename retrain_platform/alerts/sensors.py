"""Failed runs become alerts: a line in alerts.jsonl and, if configured, a webhook POST.

A failed run is one of three kinds, said apart because they call for different people:
- `rejected`: the challenger failed the blocking `gates_passed` check ("candidate rejected by
  gates: ..."); production is untouched, nothing is broken.
- `blocked`: the batch failed a blocking data check (schema, rows, coverage); the data needs a look.
- `error`: anything else (an exception, a failure raised by an asset); the platform needs a look.
"""


import re
from datetime import UTC, datetime

import dagster as dg
import httpx

from retrain_platform.names import GATES_CHECK, TAG_PREFIX

from .resources import AlertsResource

WEBHOOK_TIMEOUT_SECONDS = 5.0


def _error_chain(error) -> list[str]:
    """'Class: message' of an error and of its causes, outermost first, without stack traces."""
    chain = []
    while error is not None and len(chain) < 5:
        head, sep, rest = (error.message or "").strip().partition(": ")
        text = rest if sep and head.rsplit(".", 1)[-1] == error.cls_name else (error.message or "").strip()
        chain.append(f"{error.cls_name}: {text.strip()}" if error.cls_name else text.strip())
        error = error.cause or error.context
    return chain


def _failed_gates_detail(evaluation) -> str:
    """'auc_floor = 0.6412 (needs >= 0.99)' for each failed gate, from the check's metadata."""
    names = evaluation.metadata.get("failed_gates")
    names = list(getattr(names, "value", names) or [])
    table = getattr(evaluation.metadata.get("gates"), "value", "") or ""
    details = []
    for name in names:
        row = re.search(rf"^\| {re.escape(name)} \| ([^|]*) \| ([^|]*) \|", table, re.MULTILINE)
        details.append(f"{name} = {row.group(1).strip()} (needs {row.group(2).strip()})" if row else name)
    return ", ".join(details) or (evaluation.description or "failed")


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list:
    """The failed asset check evaluations of a run (blocking or not), in order."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [e.dagster_event.event_specific_data for e in entries if e.dagster_event]
    return [e for e in evaluations if not e.passed]


def alert_for(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    failures = context.get_step_failure_events()
    chains = [_error_chain(e.step_failure_data.error) for e in failures if e.step_failure_data.error]
    errors = ["\ncaused by ".join(chain) for chain in chains]
    message = "\n".join(errors) or context.failure_event.message or "the run failed"
    blocking = [e for e in failed_checks(context.instance, run.run_id)
                if e.blocking and e.severity == dg.AssetCheckSeverity.ERROR]  # fmt: skip
    checks_only = bool(blocking) and all("DagsterAssetCheckFailedError" in text for text in errors)
    gates = [e for e in blocking if e.check_name == GATES_CHECK]
    if checks_only and gates:
        kind, summary = "rejected", f"candidate rejected by gates: {_failed_gates_detail(gates[0])}"
    elif checks_only:
        kind = "blocked"
        summary = "batch blocked by data checks: " + "; ".join(
            f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description or 'failed'}" for e in blocking
        )
    else:
        kind = "error"
        first = chains[0][-1] if chains else message  # the innermost cause says what went wrong
        steps = ", ".join(e.step_key for e in failures if e.step_key)
        summary = f"error in {steps}: {first}" if steps else f"error: {first}"
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "kind": kind,
        "summary": summary[:1000],
        "failed_steps": [e.step_key for e in failures],
        "failed_checks": [f"{e.asset_key.to_user_string()}.{e.check_name}" for e in blocking],
        "message": message[:4000],
        "tags": {k: v for k, v in run.tags.items() if k.startswith(TAG_PREFIX)},
    }


def post_alert(url: str, alert: dict, log) -> bool:
    """POST the alert as JSON; a webhook that fails is logged, never raised: the alert is on file."""
    try:
        httpx.post(url, json=alert, timeout=WEBHOOK_TIMEOUT_SECONDS).raise_for_status()
        return True
    except Exception as err:  # noqa: BLE001 - any failure of the webhook (bad URL, refused, 5xx)
        log.warning(f"alert webhook {url} failed: {type(err).__name__}: {err}")
        return False


@dg.run_failure_sensor(name="run_failure_alert", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False)  # fmt: skip
def run_failure_alert(context: dg.RunFailureSensorContext, alerts: AlertsResource):
    """Records every failed run as an alert in alerts.jsonl (and POSTs it to the webhook, if
    one is set), saying apart a rejected candidate or a blocked batch from an error."""
    alert = alert_for(context)
    alerts.record(alert)
    context.log.info(f"alert: {alert['summary']}")
    if alerts.webhook_url:
        post_alert(alerts.webhook_url, alert, context.log)
