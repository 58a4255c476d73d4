"""When should the platform retrain, and how? Offline, on the vendored 2013 flights, with every
label known after a one-day delay: a platform that retrains on all its history once the labels that
came in since its model reach a share of that model's rows, against retraining on the 1st of every
month, each with the training of before (LightGBM early-stopped on the validation rows, which it
never learns) and the training of now (LightGBM or logistic, chosen on the validation rows, then
refit on train + validation), in the same run.

Prints, per policy and training, how many retrains follow the first model (trained on
January-February, as the replay's bootstrap; the monthly policy's March model is that same model)
and the mean monthly AUC from March to December, beside the static January-February model. This is
what the default RETRAIN_RETRAIN_MIN_NEW_LABEL_SHARE rests on; the replay then checks the live
loop, gates and all.

Then, with the default share, the same retrains passed through the promotion gates: a retrained
model serves only if it beats the model serving on its own holdout by each rule given as
METRIC:MIN_IMPROVEMENT (the rest of the gates at their defaults), with every verdict printed, and
whether any promotion lowered the holdout AUC.

    .venv/bin/python benchmarks/retrain_policy.py [--shares 0.2 0.25 0.33] [--gated f1:0.02 auc:0.005 auc:0]
        [--trainings before now] [--half-lives 90] [--no-monthly]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from retrain_platform.core.gates import GateConfig
from retrain_platform.core.training import LIGHTGBM, TrainParams
from retrain_platform.datasets import FLIGHTS
from retrain_platform.replay.baselines import (
    gated_scores,
    monthly_auc,
    new_label_retrains,
    scheduled_scores,
    static_scores,
)
from retrain_platform.settings import Settings

START, DELAY = "2013-03-01", pd.Timedelta(days=1)
TRAININGS = {
    "before": TrainParams(kinds=(LIGHTGBM,), refit=False),
    "now": TrainParams(),
    "now, learning the holdout": TrainParams(learn_holdout=True),
}


def trainings(names: list[str], half_lives: list[float]) -> dict[str, TrainParams]:
    chosen = {name: TRAININGS[name] for name in names}
    # Recency weighting on top of today's training, one variant per half-life.
    chosen |= {f"now, half-life {days:g} d": TrainParams(recency_half_life_days=days) for days in half_lives}
    return chosen


def lowered(verdicts: list[str]) -> int:
    """Promotions whose challenger AUC on the holdout was below the champion's."""
    count = 0
    for verdict in verdicts:
        if "promote" in verdict:
            challenger, champion = verdict.split(" AUC ")[1].split(",")[0].split(" vs ")
            count += float(challenger) < float(champion.split()[-1])
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="*", default=[0.2, 0.25, 0.33])
    parser.add_argument(
        "--gated",
        nargs="*",
        default=["f1:0.02", "auc:0.005", "auc:0"],
        help="improvement rules METRIC:MIN to replay the default share's retrains through",
    )
    parser.add_argument("--trainings", nargs="*", choices=list(TRAININGS), default=list(TRAININGS))
    parser.add_argument("--half-lives", type=float, nargs="*", default=[],
                        help="also today's training with rows weighted by recency, per half-life in days")  # fmt: skip
    parser.add_argument("--no-monthly", action="store_true", help="skip the monthly policy")
    args = parser.parse_args()
    history = FLIGHTS.load()
    variants = trainings(args.trainings, args.half_lives)
    caches: dict[str, dict] = {name: {} for name in variants}  # models shared by policies retraining on one day
    monthly = list(pd.date_range("2013-04-01", "2013-12-01", freq="MS"))
    policies = {} if args.no_monthly else {"monthly, all history": [pd.Timestamp(START), *monthly]}
    policies |= {f"new labels >= {share:.0%} of the model's rows": new_label_retrains(history, FLIGHTS, START, share, DELAY)
                 for share in args.shares}  # fmt: skip
    statics = {}
    for training, params in variants.items():
        statics[training] = monthly_auc(history, FLIGHTS, static_scores(history, FLIGHTS, START, params, caches[training])).mean()
        print(f"static January-February model, training {training}: mean monthly AUC {statics[training]:.4f}", flush=True)
    for name, retrains in policies.items():
        for training, params in variants.items():
            started = time.monotonic()
            if name.startswith("monthly"):  # the 1st of each month with the month before fully labelled
                scores = scheduled_scores(history, FLIGHTS, START, retrains[1:], pd.Timedelta(0), params, caches[training])
            else:
                scores = scheduled_scores(history, FLIGHTS, START, retrains, DELAY, params, caches[training])
            auc = monthly_auc(history, FLIGHTS, scores)
            count = len(retrains) - 1 if name.startswith("monthly") else len(retrains)  # after the first model
            print(f"{name:40s} training {training:8s} {count:2d} retrains  mean AUC {auc.mean():.4f}  "
                  f"(static {auc.mean() - statics[training]:+.4f})  [{time.monotonic() - started:.0f} s]")  # fmt: skip
            print("    " + " ".join(f"{m[5:]}:{v:.3f}" for m, v in auc.items()), flush=True)
        if not name.startswith("monthly"):
            print("    retrains on " + ", ".join(d.date().isoformat()[5:] for d in retrains))
    share = Settings().retrain_min_new_label_share
    retrains = new_label_retrains(history, FLIGHTS, START, share, DELAY)
    for rule in args.gated:
        metric, minimum = rule.split(":")
        gates = GateConfig(improvement_metric=metric, min_improvement=float(minimum))
        for training, params in variants.items():
            started = time.monotonic()
            scores, verdicts = gated_scores(history, FLIGHTS, START, retrains, DELAY, params, gates, caches[training])
            auc = monthly_auc(history, FLIGHTS, scores)
            promoted = sum("promote" in v for v in verdicts)
            print(f"share {share:.0%}, gated by {metric} >= +{float(minimum):.1%}, training {training}: "
                  f"{promoted} of {len(retrains)} promoted ({lowered(verdicts)} lowered the holdout AUC)  "
                  f"mean AUC {auc.mean():.4f}  (static {auc.mean() - statics[training]:+.4f})  "
                  f"[{time.monotonic() - started:.0f} s]")  # fmt: skip
            print("    " + " ".join(f"{m[5:]}:{v:.3f}" for m, v in auc.items()))
            for verdict in verdicts:
                print("    " + verdict, flush=True)


if __name__ == "__main__":
    main()
