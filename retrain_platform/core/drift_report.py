"""The Evidently drift report for people: the HTML page and a small summary of what it found."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec


def evidently_drift_report(reference: pd.DataFrame, current: pd.DataFrame, spec: DatasetSpec, html_path: Path) -> dict:
    """Run Evidently's DataDriftPreset on the spec's features, save the HTML, return its verdicts."""
    from evidently import (  # heavy: imported only where a report is made
        DataDefinition,
        Dataset,
        Report,
    )
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=spec.numeric_features, categorical_columns=spec.categorical_features)
    columns = spec.feature_names

    def dataset(frame: pd.DataFrame):
        return Dataset.from_pandas(frame[columns].reset_index(drop=True), data_definition=definition)

    snapshot = Report([DataDriftPreset()], include_tests=True).run(current_data=dataset(current), reference_data=dataset(reference))
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    result = json.loads(snapshot.json())
    drifted = sorted(
        t["metric_config"]["params"]["column"]
        for t in result["tests"]
        if "column" in t["metric_config"]["params"] and t["status"] == "FAIL"
    )
    return {"drifted_columns": drifted, "share": len(drifted) / len(columns), "html": str(html_path)}
