"""Blocking data checks on validated_features: a failure stops training on that batch.

They run inside the asset's own step (check specs on the asset), on the frame it just built:
as separate check steps each would load the whole frame back from storage first.
"""

import dagster as dg
import pandas as pd

from retrain_platform.core.validation import (
    CheckOutcome,
    check_row_count,
    check_schema,
    check_window_coverage,
)
from retrain_platform.core.window import Window
from retrain_platform.datasets.spec import DatasetSpec

ASSET = "validated_features"
FEATURE_CHECK_SPECS = [
    dg.AssetCheckSpec("schema_valid", asset=ASSET, blocking=True,
                      description="Types, nulls, ranges, allowed categories, unique ids and 0/1 labels match the spec."),
    dg.AssetCheckSpec("enough_rows", asset=ASSET, blocking=True,
                      description="The batch has at least the spec's minimum number of rows."),
    dg.AssetCheckSpec("window_covered", asset=ASSET, blocking=True,
                      description="At least 90% of the days in the data window have rows."),
]  # fmt: skip


def feature_check_results(frame: pd.DataFrame, spec: DatasetSpec) -> list[dg.AssetCheckResult]:
    window = Window.of(frame)
    outcomes: dict[str, CheckOutcome] = {
        "schema_valid": check_schema(frame, spec),
        "enough_rows": check_row_count(frame, spec),
        "window_covered": check_window_coverage(frame, spec, window.start, window.end),
    }
    return [
        dg.AssetCheckResult(check_name=name, passed=o.passed, description=o.description, metadata=o.metadata)
        for name, o in outcomes.items()
    ]
