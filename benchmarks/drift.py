"""Fast drift engine vs Evidently 0.7 DataDriftPreset: 100,000 rows x 20 columns of real flights data.

Reference: the first 100,000 flights of 2013 in time order (January to mid-April). Current: the first
100,000 flights from July on (summer into autumn), so the seasonal drift is real, not injected.

Columns: the 16 flights features (13 numeric, 3 categorical) plus 4 derived from real fields to reach
20 = 16 numeric + 4 categorical:
  dep_minute        scheduled departure as minute of the day (~1,000 distinct values: a wide numeric)
  temp_dewp_spread  temp - dewp, °F (how far the air is from saturation)
  block_hours       (arr_hour - dep_hour) mod 24, scheduled hours in the air plus time zones
  route             "origin-dest" (categorical, ~220 levels)

Both sides are timed in the same run: Evidently's `Report.run` (datasets built inside the timing,
median of 3) and the engine's `ReferenceProfile.build` and `compare` (median of 3 each, and of
build + compare together). The script prints per-column verdicts and whether they agree.

    .venv/bin/python benchmarks/drift.py
"""

from __future__ import annotations

import statistics
import time
import warnings

import pandas as pd

from retrain_platform.core.drift import ReferenceProfile
from retrain_platform.core.drift_report import column_verdicts, run_evidently
from retrain_platform.datasets.flights import FLIGHTS

ROWS = 100_000
REPEATS = 3
TARGET_SPEEDUP = 30  # the platform's performance target, judged on build + compare
DERIVED_NUMERIC = ["dep_minute", "temp_dewp_spread", "block_hours"]
NUMERIC = [*FLIGHTS.numeric_features, *DERIVED_NUMERIC]
CATEGORICAL = [*FLIGHTS.categorical_features, "route"]
COLUMNS = NUMERIC + CATEGORICAL


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = FLIGHTS.load().sort_values(FLIGHTS.timestamp, kind="stable")
    departure = df[FLIGHTS.timestamp]
    df["dep_minute"] = (departure.dt.hour * 60 + departure.dt.minute).astype(float)
    df["temp_dewp_spread"] = df["temp"] - df["dewp"]
    df["block_hours"] = (df["arr_hour"] - df["dep_hour"]) % 24
    df["route"] = df["origin"] + "-" + df["dest"]
    reference = df[COLUMNS].head(ROWS).reset_index(drop=True)
    current = df.loc[departure.dt.month >= 7, COLUMNS].head(ROWS).reset_index(drop=True)
    assert reference.shape == current.shape == (ROWS, 20)
    return reference, current


def evidently(reference: pd.DataFrame, current: pd.DataFrame):
    return run_evidently(reference, current, NUMERIC, CATEGORICAL)


def evidently_columns(snapshot) -> dict[str, tuple[str, float, bool]]:
    """column -> (method, score, drifted)."""
    return {column: (method, score, drift) for column, (score, method, _, drift) in column_verdicts(snapshot).items()}


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    warnings.filterwarnings("ignore")  # Evidently's plots and chi-square are chatty
    reference, current = frames()
    print(f"reference {reference.shape}, current {current.shape}: "
          f"{len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical")

    evidently_times, snapshot = [], None
    for _ in range(REPEATS):
        seconds, snapshot = timed(evidently, reference, current)
        evidently_times.append(seconds)
    expected = evidently_columns(snapshot)

    build_times, compare_times, total_times, result = [], [], [], None
    for _ in range(REPEATS):
        build_s, profile = timed(ReferenceProfile.build, reference, NUMERIC, CATEGORICAL)
        compare_s, result = timed(profile.compare, current, 0.5)
        build_times.append(build_s)
        compare_times.append(compare_s)
        total_times.append(build_s + compare_s)

    ours = result.by_column()
    agree = [c for c in COLUMNS if ours[c].drifted == expected[c][2] and ours[c].method == expected[c][0]]
    max_diff = max(abs(ours[c].score - expected[c][1]) for c in COLUMNS)
    print(f"\n{'column':18} {'method':30} {'engine score':>14} {'evidently':>14}  drift (engine/evidently)")
    for c in COLUMNS:
        method, score, drifted = expected[c]
        print(f"{c:18} {ours[c].method:30} {ours[c].score:14.6g} {score:14.6g}  {ours[c].drifted!s:5} / {drifted}")

    evidently_s = statistics.median(evidently_times)
    compare_s, build_s, total_s = (statistics.median(t) for t in (compare_times, build_times, total_times))
    n_expected = sum(e[2] for e in expected.values())
    print(f"\ndrifted columns: engine {result.n_drifted}/{len(COLUMNS)} (dataset drift {result.dataset_drift}), "
          f"evidently {n_expected}/{len(COLUMNS)} (dataset drift {n_expected / len(COLUMNS) >= 0.5})")
    print(f"largest score difference: {max_diff:.3g}")
    print(f"verdicts agree: {len(agree)}/{len(COLUMNS)} columns")
    print(f"\nEvidently DataDriftPreset run:  median {evidently_s:8.3f} s  (runs: {_runs(evidently_times)})")
    print(f"engine build profile (once):    median {build_s:8.3f} s  (runs: {_runs(build_times)})")
    print(f"engine compare (per window):    median {compare_s:8.3f} s  (runs: {_runs(compare_times)})")
    print(f"engine build + compare:         median {total_s:8.3f} s  (runs: {_runs(total_times)})")
    print(f"speedup, compare vs Evidently:          {evidently_s / compare_s:8.1f}x")
    print(f"speedup, build + compare vs Evidently:  {evidently_s / total_s:8.1f}x  (target >= {TARGET_SPEEDUP}x)")
    if len(agree) != len(COLUMNS):
        raise SystemExit("verdicts disagree with Evidently")


def _runs(seconds: list[float]) -> str:
    return ", ".join(f"{s:.4f}" for s in seconds)

if __name__ == "__main__":
    main()
