"""Each model kind the candidate step can serve, on one flights window: its validation AUC, the
served (refit) model's holdout AUC, and what one row costs on the request path against the 2 ms
latency gate, with the LightGBM fast path as the yardstick.

    .venv/bin/python benchmarks/candidate_kinds.py [--days 60] [--repeats 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from retrain_platform.core.predictor import is_deterministic
from retrain_platform.core.split import time_split
from retrain_platform.core.training import KINDS, TrainParams, train_candidate
from retrain_platform.core.window import select_window
from retrain_platform.datasets import FLIGHTS


def one_row_us(predictor, rows: list[dict], repeats: int) -> float:
    timings = np.empty(repeats)
    for i in range(repeats):
        row = rows[i % len(rows)]
        started = time.perf_counter()
        predictor.score_one(row)
        timings[i] = time.perf_counter() - started
    return float(np.median(timings) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=60, help="window ending on the last day of the data (the platform's retrain window)")
    parser.add_argument("--repeats", type=int, default=2_000)
    args = parser.parse_args()
    frame, window = select_window(FLIGHTS.load(), FLIGHTS, args.days)
    split = time_split(frame, FLIGHTS)
    rows = split.holdout[FLIGHTS.feature_names].head(500).to_dict("records")
    print(f"window {window.label()}: {len(split.train):,} train, {len(split.validation):,} validation, "
          f"{len(split.holdout):,} holdout rows")  # fmt: skip
    timings = {}
    for kind in KINDS:
        trained = train_candidate(split, FLIGHTS, TrainParams(kinds=(kind,)))
        predictor = trained.predictor
        predictor.score_one(rows[0])  # the LightGBM fast path is built on first use
        timings[kind] = one_row_us(predictor, rows, args.repeats)
        bulk_started = time.perf_counter()
        predictor.scores(split.holdout)
        bulk_us = (time.perf_counter() - bulk_started) / len(split.holdout) * 1e6
        print(f"{kind:9s} validation AUC {trained.validation_metrics['auc']:.4f}  served holdout AUC "
              f"{trained.holdout_metrics['auc']:.4f}  one row {timings[kind]:6.1f} us (gate 2,000 us)  "
              f"bulk {bulk_us:.2f} us/row  deterministic {is_deterministic(predictor, split.holdout)}")  # fmt: skip
    print(f"one row, logistic against LightGBM's fast path: {timings['logistic'] / timings['lightgbm']:.2f}x the time")


if __name__ == "__main__":
    main()
