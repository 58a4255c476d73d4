"""Does the monitor's alarm mean something? False alarms and detections on real 2013 flights.

Reference period: January and February (the default 60-day retrain window). A model is trained on
the even days of it (as the platform trains: LightGBM, time-ordered split) and its reference is
every row of those days, as `reference_data` stores it. Windows are contiguous traffic of the
default check size from the odd days: the same period, rows the reference was not built from.

- False alarms: the share of those windows that alarm (a drift finding that would ask for a
  retrain: level flag or alert), calibrated (target <= 5 %) against Evidently's fixed thresholds
  as the platform used them before (more than 20 % of the columns drifted).
- Detection, each shift injected into every window: `distance` moved by half its standard
  deviation, one carrier's share doubled (targets: flagged in >= 90 % of windows), and the label
  flipped for a fifth of the rows, which the features cannot show: realised AUC must fall below
  what the model's holdout promised by more than its interval once the labels arrive.
- Estimation without labels, in the same run: estimation_quality.py with its defaults (skip it
  with --no-estimation; run that script alone for its options).

    .venv/bin/python benchmarks/monitoring_quality.py [--window 5000] [--windows 20] [--no-estimation]
"""

from __future__ import annotations

import argparse
import time

import estimation_quality  # the script beside this one (python puts its folder on the path)

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from retrain_platform.core.drift import ReferenceProfile
from retrain_platform.core.drift_calibration import DriftCalibration
from retrain_platform.core.monitoring import DriftPolicy, assess_drift
from retrain_platform.core.split import reference_rows, time_split
from retrain_platform.core.training import TrainParams, train_candidate
from retrain_platform.datasets import FLIGHTS

SPEC = FLIGHTS
OLD_FLAG_SHARE = 0.20  # the platform's rule before calibration: more than 20 % of columns drifted


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley and McNeil's standard error of an AUC on so many positives and negatives."""
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return float(np.sqrt(variance))


def shifted(window: pd.DataFrame, flights: pd.DataFrame, kind: str, seed: int) -> pd.DataFrame:
    if kind == "distance +0.5 sd":
        return window.assign(distance=window["distance"] + 0.5 * flights["distance"].std())
    if kind == "carrier share x2":
        carrier = flights["carrier"].value_counts().index[3]  # a mid-sized carrier
        theirs = window[window["carrier"] == carrier]
        others = window[window["carrier"] != carrier].sample(len(window) - 2 * len(theirs), random_state=seed)
        return pd.concat([others, theirs, theirs]).sort_values(SPEC.timestamp, kind="stable")
    if kind == "label flipped, 1 in 5":
        flip = np.random.default_rng(seed).random(len(window)) < 0.2
        return window.assign(**{SPEC.target: np.where(flip, 1 - window[SPEC.target], window[SPEC.target])})
    raise ValueError(kind)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=5_000, help="rows per check (the default drift window)")
    parser.add_argument("--windows", type=int, default=20, help="contiguous windows to check")
    parser.add_argument("--no-estimation", action="store_true", help="skip estimation_quality.py's figures")
    args = parser.parse_args()
    started = time.perf_counter()

    flights = SPEC.load().sort_values(SPEC.timestamp, kind="stable").reset_index(drop=True)
    period = flights[flights[SPEC.timestamp] < "2013-03-01"]
    even = period[SPEC.timestamp].dt.dayofyear % 2 == 0
    seen, unseen = period[even], period[~even].reset_index(drop=True)

    split = time_split(seen, SPEC)
    trained = train_candidate(split, SPEC, TrainParams())
    model = trained.predictor
    promised = trained.holdout_metrics["auc"]
    reference = reference_rows(split)
    reference = reference.assign(prediction=model.scores(reference))
    profile = ReferenceProfile.build(reference, SPEC.numeric_features, SPEC.categorical_features)
    calibration = DriftCalibration.fit(reference, profile, args.window, model.importance())
    policy = DriftPolicy()
    print(f"reference: {len(reference):,} rows of the even days of Jan-Feb; model holdout AUC {promised:.4f}; "
          f"{len(calibration.nulls)} columns calibrated on stretches of {args.window:,} rows")  # fmt: skip

    starts = np.linspace(0, len(unseen) - args.window, args.windows).astype(int)
    windows = [unseen.iloc[s : s + args.window] for s in starts]
    print(f"windows: {len(windows)} of {args.window:,} contiguous rows from the odd days ({len(unseen):,} rows)\n")

    def check(window: pd.DataFrame):
        window = window.assign(prediction=model.scores(window))
        raw = profile.compare(window, skip_empty=True)
        return raw, assess_drift(calibration.judge(raw, policy.false_alarm_rate), policy)

    checks = [check(w) for w in windows]
    old = np.mean([raw.share_drifted > OLD_FLAG_SHARE for raw, _ in checks])
    new = np.mean([a.retrain for _, a in checks])
    print("false alarms on unchanged traffic (share of windows that ask for a retrain)")
    print(f"  Evidently's thresholds, > {OLD_FLAG_SHARE:.0%} of columns drifted: {old:6.1%}")
    print(f"  calibrated, importance-weighted:                  {new:6.1%}   target <= 5 %   "
          f"{'met' if new <= 0.05 else 'NOT met'}\n")  # fmt: skip

    print("detection of injected shifts (share of windows)")
    for kind, column in (("distance +0.5 sd", "distance"), ("carrier share x2", "carrier")):
        found = []
        for i, window in enumerate(windows):
            moved = shifted(window, flights, kind, i)
            raw, _ = check(moved)
            found.append(column in calibration.judge(raw, policy.false_alarm_rate).drifted_columns)
        share = float(np.mean(found))
        print(f"  {kind:<22} {column} flagged: {share:6.1%}   target >= 90 %   {'met' if share >= 0.9 else 'NOT met'}")

    caught, drops = [], []
    for i, window in enumerate(windows):
        flipped = shifted(window, flights, "label flipped, 1 in 5", i)
        labels, scores = flipped[SPEC.target], model.scores(flipped)
        realised = roc_auc_score(labels, scores)
        margin = 1.96 * auc_standard_error(promised, int(labels.sum()), int((1 - labels).sum()))
        caught.append(realised < promised - margin)
        drops.append(promised - realised)
    share = float(np.mean(caught))
    print(f"  {'label flipped, 1 in 5':<22} realised AUC below the promised {promised:.4f} by more than its interval: "
          f"{share:6.1%} (mean drop {np.mean(drops):.3f})")  # fmt: skip
    print(f"\n{time.perf_counter() - started:.0f} s")
    if not args.no_estimation:
        print("\nPerformance estimation without labels (estimation_quality.py):\n")
        estimation_quality.main([])


if __name__ == "__main__":
    main()
