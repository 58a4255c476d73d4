"""What a retrain run did, for people: promoted, rejected by the gates, or failed and where.

Read from the run's events as Dagster's GraphQL API returns them (RUN_EVENTS in
retrain_launcher.py): the `gates_passed` check on `evaluation_report` says whether the candidate
was rejected and by which gates (or, at severity WARN, that it waits in shadow for live evidence),
a `production_model` materialization that it was promoted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from retrain_platform.names import EVALUATION_ASSET, GATES_CHECK, PRODUCTION_ASSET

Outcome = Literal["running", "promoted", "rejected", "waiting", "failed", "canceled", "finished"]


@dataclass(frozen=True)
class RunOutcome:
    outcome: Outcome
    detail: str  # one or two sentences for the Retrain page
    failed_gates: list[str] = field(default_factory=list)
    promoted_version: str | None = None
    failed_step: str | None = None


def running(status: str) -> RunOutcome:
    return RunOutcome("running", "Waiting in the queue." if status == "QUEUED" else "In progress.")


def _is(key: dict, name: str) -> bool:
    # The last part of the asset key: a deployment may prefix the keys with the dataset's name.
    return key["path"][-1] == name


def _metadata(entries: list[dict]) -> dict:
    values = {}
    for entry in entries:
        if "jsonString" in entry:
            values[entry["label"]] = json.loads(entry["jsonString"])
        elif "text" in entry or "intValue" in entry:
            values[entry["label"]] = entry.get("text", entry.get("intValue"))
    return values


def _first_failure(events: list[dict]) -> tuple[str | None, str]:
    """The first failed step and what went wrong there: the innermost cause, which names the problem
    (the outer errors only say that a step failed)."""
    for event in events:
        if event["__typename"] == "ExecutionStepFailureEvent":
            error = event.get("error") or {}
            innermost = (error.get("causes") or [error])[-1]
            lines = (innermost.get("message") or event["message"]).strip().splitlines()
            return event.get("stepKey"), (lines[0] if lines else "")[:500]
    for event in events:
        if event["__typename"] == "RunFailureEvent":
            return None, event["message"].strip()[:500]
    return None, ""


def finished(status: str, events: list[dict]) -> RunOutcome:
    """The outcome of a run in a terminal status (SUCCESS, FAILURE, CANCELED), from all its events."""
    step, error = _first_failure(events)
    for event in events:
        evaluation = event.get("evaluation")
        if evaluation and evaluation["checkName"] == GATES_CHECK and _is(evaluation["assetKey"], EVALUATION_ASSET):
            if not evaluation["success"] and evaluation.get("severity") == "WARN":
                return RunOutcome("waiting", "The challenger passed offline and now serves in shadow until live "
                                  "evidence decides it. Production is unchanged.")  # fmt: skip
            if not evaluation["success"]:
                gates = list(_metadata(evaluation["metadataEntries"]).get("failed_gates") or [])
                named = ", ".join(gates) or evaluation.get("description") or "see the run"
                return RunOutcome("rejected", f"Rejected by the gates: {named}. Production is unchanged.", gates)
    for event in events:
        if event["__typename"] == "MaterializationEvent" and _is(event["assetKey"], PRODUCTION_ASSET):
            version = _metadata(event["metadataEntries"]).get("version")
            version = None if version is None else str(version)
            detail = f"Promoted: version {version} is now in production."
            if step:  # production moved, but a step beside it failed afterwards
                detail += f" Then step {step} failed: {error}"
            return RunOutcome("promoted", detail, promoted_version=version, failed_step=step)
    if status == "CANCELED":
        return RunOutcome("canceled", "Canceled before a model was promoted.", failed_step=step)
    if status == "SUCCESS":
        return RunOutcome("finished", "Succeeded without moving production (the job has no promotion).")
    where = f"at step {step}" if step else "before any step ran"
    return RunOutcome("failed", f"Failed {where}: {error or 'see the run in Dagster'}", failed_step=step)
