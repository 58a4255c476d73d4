"""Blocking data checks on validated_features: a failure stops training on that batch."""

import dagster as dg
import pandas as pd

from retrain_platform.assets.ingest import validated_features
from retrain_platform.core.window import Window
from retrain_platform.core.validation import CheckOutcome, check_row_count, check_schema, check_window_coverage
from retrain_platform.resources import DatasetResource


def _result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=outcome.passed, description=outcome.description, metadata=outcome.metadata)


@dg.asset_check(asset=validated_features, blocking=True)
def schema_valid(validated_features: pd.DataFrame, dataset: DatasetResource) -> dg.AssetCheckResult:
    """Types, nulls, ranges, allowed categories, unique ids and 0/1 labels match the dataset spec."""
    return _result(check_schema(validated_features, dataset.spec))


@dg.asset_check(asset=validated_features, blocking=True)
def enough_rows(validated_features: pd.DataFrame, dataset: DatasetResource) -> dg.AssetCheckResult:
    """The batch has at least the spec's minimum number of rows."""
    return _result(check_row_count(validated_features, dataset.spec))


@dg.asset_check(asset=validated_features, blocking=True)
def window_covered(validated_features: pd.DataFrame, dataset: DatasetResource) -> dg.AssetCheckResult:
    """At least 90% of the days in the data window have rows."""
    window = Window.of(validated_features)
    return _result(check_window_coverage(validated_features, dataset.spec, window.start, window.end))


FEATURE_CHECKS = [schema_valid, enough_rows, window_covered]
