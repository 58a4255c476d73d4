"""Evidently's drift report: the HTML page for people, and its per-column verdicts read back."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec

REPORT_REFERENCE_ROWS = 20_000


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]):
    """Evidently's DataDriftPreset on explicitly typed columns; returns its snapshot."""
    from evidently import (  # heavy: imported only where a report is made
        DataDefinition,
        Dataset,
        Report,
    )
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = [*numeric, *categorical]

    def dataset(frame: pd.DataFrame):
        return Dataset.from_pandas(frame[columns].reset_index(drop=True), data_definition=definition)

    return Report([DataDriftPreset(drift_share=0.5)], include_tests=True).run(
        current_data=dataset(current), reference_data=dataset(reference)
    )


def column_verdicts(snapshot) -> dict[str, tuple[float, str, float, bool]]:
    """column -> (score, method, threshold, drifted) as Evidently reports them."""
    report = json.loads(snapshot.json())
    scores = {
        m["config"]["column"]: (m["value"], m["config"]["method"], m["config"]["threshold"])
        for m in report["metrics"]
        if m["config"]["type"] == "evidently:metric_v2:ValueDrift"
    }
    drifted = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in report["tests"]
        if "column" in t["metric_config"]["params"]
    }
    return {column: (*scores[column], drifted[column]) for column in scores}


def evidently_drift_report(reference: pd.DataFrame, current: pd.DataFrame, spec: DatasetSpec, html_path: Path) -> dict:
    """Run Evidently on the spec's features, save the HTML, return the columns it found drifted."""
    if len(reference) > REPORT_REFERENCE_ROWS:  # the page shows distributions: a sample draws them as well
        reference = reference.sample(n=REPORT_REFERENCE_ROWS, random_state=0)
    snapshot = run_evidently(reference, current, spec.numeric_features, spec.categorical_features)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    drifted = sorted(column for column, (*_, drift) in column_verdicts(snapshot).items() if drift)
    return {"drifted_columns": drifted, "share": len(drifted) / len(spec.feature_names), "html": str(html_path)}
