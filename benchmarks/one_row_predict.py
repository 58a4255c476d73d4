"""One-row scoring: the predictor's native fast path against LightGBM's public `Booster.predict`,
measured in one run on the same model and the same rows.

A LightGBM model is trained on the flights window (default 365 days, default training parameters,
as the platform trains it). Every variant scores one raw flight at a time, as a `POST /predict`
does, encoding included (the same encoder into a reused buffer):

- fast: `Predictor.score_one`, LightGBM's single-row C entry point with its configuration parsed
  once (`LGBM_BoosterPredictForMatSingleRowFast`, reached through `lightgbm.basic._LIB`);
- public: `Booster.predict` on a 1-row float64 C-contiguous numpy array, with LightGBM's defaults,
  with `num_threads=1`, and with `num_threads=1, predict_disable_shape_check=True`.

Every variant must give the fast path's scores on the same rows (to 1e-12) before anything is
timed. The variants take turns: each round times every variant, call by call, in an order rotated
every round; a variant's figure is the median over rounds of its per-round median call time, and the
ratio fast / fastest public is taken within each round, its median over rounds reported. Last, the
cost of explaining one row (`contribution_rows`, LightGBM's tree SHAP): what a request with
`explain: true` would add.

    .venv/bin/python benchmarks/one_row_predict.py [--days 365] [--rounds 7] [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import lightgbm as lgb
import numpy as np


def train(days: int):
    from retrain_platform.core.features import build_features
    from retrain_platform.core.split import time_split
    from retrain_platform.core.training import TrainParams, train_candidate
    from retrain_platform.core.window import select_window
    from retrain_platform.datasets import FLIGHTS as spec

    raw, window = select_window(spec.load(), spec, days)
    split = time_split(build_features(raw, spec), spec)
    # LightGBM whatever validation prefers: this measures its one-row path.
    return train_candidate(split, spec, TrainParams(kinds=("lightgbm",))).predictor, split.holdout, window


def variants(predictor) -> dict:
    booster, encoder = predictor.booster, predictor.encoder
    buffer = np.empty((1, len(encoder.names)), dtype=np.float64)

    def public(**kwargs):
        def score(row: dict) -> float:
            encoder.row(row, buffer[0])
            return float(booster.predict(buffer, **kwargs)[0])

        return score

    return {
        "fast (score_one, native single-row)": predictor.score_one,
        "Booster.predict, defaults": public(),
        "Booster.predict, num_threads=1": public(num_threads=1),
        "Booster.predict, num_threads=1, predict_disable_shape_check": public(
            num_threads=1, predict_disable_shape_check=True
        ),
    }


def time_calls(score, rows: list[dict], calls: int) -> float:
    """Median wall time of one call, in milliseconds."""
    timings = []
    for i in range(calls):
        row = rows[i % len(rows)]
        start = time.perf_counter()
        score(row)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365, help="training window in days (0: all history)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000, help="one-row calls per variant per round")
    args = parser.parse_args()

    started = time.perf_counter()
    predictor, holdout, window = train(args.days)
    print(f"model: {window.label()}, {predictor.booster.num_trees()} trees "
          f"(best iteration {predictor.booster.best_iteration}), {len(predictor.encoder.names)} features, "
          f"trained in {time.perf_counter() - started:.0f} s")  # fmt: skip
    print(f"lightgbm {lgb.__version__}, numpy {np.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")  # fmt: skip

    rows = holdout[predictor.spec.feature_names].head(1000).to_dict("records")
    candidates = variants(predictor)
    expected = predictor.booster.predict(predictor.encoder.rows(rows))
    for name, score in candidates.items():
        got = np.array([score(row) for row in rows])
        worst = float(np.max(np.abs(got - expected)))
        assert worst <= 1e-12, f"{name} differs from Booster.predict by {worst:.3g}"
    print(f"all variants agree with Booster.predict on {len(rows)} holdout rows to 1e-12")

    names = list(candidates)
    fast, public = names[0], names[1:]
    per_round: dict[str, list[float]] = {name: [] for name in names}
    ratios = []
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            per_round[name].append(time_calls(candidates[name], rows, args.calls))
        ratios.append(per_round[fast][-1] / min(per_round[name][-1] for name in public))

    print(f"\none-row scoring, encoding included: median call, median over {args.rounds} rounds of {args.calls} calls")
    for name in names:
        values = per_round[name]
        print(f"  {name:<62} {statistics.median(values):8.4f} ms  (rounds {min(values):.4f}..{max(values):.4f})")
    best = min(public, key=lambda name: statistics.median(per_round[name]))
    print(f"fastest public: {best}")
    print(f"ratio fast / fastest public (median of per-round ratios): {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}..{max(ratios):.3f}); the public path costs "
          f"{1 / statistics.median(ratios):.1f}x the fast one")  # fmt: skip
    explain = time_calls(lambda row: predictor.contribution_rows([row]), rows, args.calls)
    print(f"explaining one row (contribution_rows, tree SHAP): {explain:.4f} ms median over {args.calls} calls")


if __name__ == "__main__":
    main()
