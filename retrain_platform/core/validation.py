"""Data checks derived from a DatasetSpec: the Pandera schema, row count and window coverage.

Each check returns a `CheckOutcome` whose metadata names the failing columns and a sample of the
offending rows, so a person looking at a failed check in the UI knows what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

from retrain_platform.datasets.spec import Categorical, DatasetSpec, Numeric

SAMPLE_ROWS = 20


@dataclass(frozen=True)
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _feature_column(feature: Numeric | Categorical) -> pa.Column:
    if isinstance(feature, Categorical):
        checks = [pa.Check.isin(feature.categories, error=f"category of {feature.name} not in the spec")]
        return pa.Column(checks=checks, nullable=feature.nullable)
    # A dtype check that accepts int and float: batches from different sources differ there,
    # but a string or object column in a numeric feature is always an error.
    checks = [pa.Check(_is_numeric, element_wise=False, error="numeric dtype")]
    if feature.min is not None or feature.max is not None:
        low = -float("inf") if feature.min is None else feature.min
        high = float("inf") if feature.max is None else feature.max
        checks.append(pa.Check.in_range(low, high, error=f"in range [{low}, {high}]"))
    if feature.integer:
        checks.append(pa.Check(lambda s: s.dropna() % 1 == 0, error="whole number"))
    return pa.Column(checks=checks, nullable=feature.nullable)


def build_schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    columns = {
        spec.id_column: pa.Column(checks=[pa.Check(_is_numeric, element_wise=False, error="numeric dtype")],
                                  unique=True, nullable=False),
        spec.target: pa.Column(checks=[pa.Check.isin([0, 1], error="binary label 0/1")], nullable=False),
        **{f.name: _feature_column(f) for f in spec.features},
    }
    if spec.timestamp:
        columns[spec.timestamp] = pa.Column(pa.DateTime, nullable=False)
    return pa.DataFrameSchema(columns, strict=False, name=f"{spec.name}_features")


def _markdown(frame: pd.DataFrame) -> str:
    """A plain markdown table (pandas' to_markdown needs the optional tabulate package)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def check_schema(frame: pd.DataFrame, spec: DatasetSpec) -> CheckOutcome:
    """Types, nulls, ranges, allowed categories, unique ids and binary labels, all at once."""
    try:
        build_schema(spec).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        failures = err.failure_cases
        columns = sorted({str(c) for c in failures["column"].dropna()})
        by_check = failures.groupby(["column", "check"], dropna=False).size().reset_index(name="failures")
        sample_index = [int(i) for i in failures["index"].dropna().unique()[:SAMPLE_ROWS]]
        sample = frame.loc[frame.index.isin(sample_index), [c for c in spec.columns if c in frame.columns]]
        return CheckOutcome(
            passed=False,
            description=f"{len(failures)} failures in columns {', '.join(columns)}",
            metadata={
                "num_failures": len(failures),
                "failing_columns": columns,
                "failures_by_check": _markdown(by_check),
                "failure_cases": _markdown(failures.head(SAMPLE_ROWS)[["column", "check", "index", "failure_case"]]),
                "offending_rows": _markdown(sample.reset_index()),
            },
        )
    return CheckOutcome(True, f"{len(frame):,} rows match the {spec.name} schema", {"rows": len(frame)})


def check_row_count(frame: pd.DataFrame, spec: DatasetSpec) -> CheckOutcome:
    passed = len(frame) >= spec.min_rows
    return CheckOutcome(
        passed,
        f"{len(frame):,} rows; at least {spec.min_rows:,} are needed",
        {"rows": len(frame), "min_rows": spec.min_rows},
    )


def check_window_coverage(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    min_coverage: float = 0.9,
) -> CheckOutcome:
    """Share of the window's days that have data: a batch with holes is no picture of the window.

    Without an explicit window, the batch's own first and last day bound it.
    """
    if spec.timestamp is None:
        return CheckOutcome(True, f"{spec.name} has no time axis; coverage does not apply", {"applies": False})
    times = pd.to_datetime(frame[spec.timestamp], errors="coerce").dropna()
    if times.empty:
        return CheckOutcome(False, f"no valid {spec.timestamp} values in the batch", {"coverage": 0.0})
    start = times.min() if start is None else start
    end = times.max() if end is None else end
    days = pd.date_range(start.normalize(), end.normalize(), freq="D")
    seen = times.dt.normalize().unique()
    covered = days.isin(seen)
    coverage = float(covered.mean()) if len(days) else 0.0
    missing = [d.date().isoformat() for d in days[~covered][:SAMPLE_ROWS]]
    return CheckOutcome(
        coverage >= min_coverage,
        f"{coverage:.1%} of the {len(days)} days in the window have data; at least {min_coverage:.0%} needed",
        {"coverage": coverage, "min_coverage": min_coverage, "days": len(days), "missing_days_sample": missing},
    )
