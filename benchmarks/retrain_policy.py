"""When should the platform retrain? Offline, on the vendored 2013 flights, with every label known
after a one-day delay: a platform that retrains on all its history once the labels that came in
since its model reach a share of that model's rows, against retraining on the 1st of every month.

Prints, per policy, how many retrains follow the first model (trained on January-February, as the
replay's bootstrap; the monthly policy's March model is that same model) and the mean monthly AUC
from March to December, beside the static January-February model. This is what the default RETRAIN_RETRAIN_MIN_NEW_LABEL_SHARE rests on; the
replay then checks the live loop, gates and all.

Then, with the default share, the same retrains passed through the promotion gates: a retrained
model serves only if it beats the model serving on its own holdout by each rule given as
METRIC:MIN_IMPROVEMENT (the rest of the gates at their defaults), with every verdict printed.

    .venv/bin/python benchmarks/retrain_policy.py [--shares 0.2 0.25 0.33] [--gated f1:0.02 auc:0.005 auc:0]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from retrain_platform.core.gates import GateConfig
from retrain_platform.core.training import TrainParams
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=float, nargs="*", default=[0.2, 0.25, 0.33])
    parser.add_argument(
        "--gated",
        nargs="*",
        default=["f1:0.02", "auc:0.005", "auc:0"],
        help="improvement rules METRIC:MIN to replay the default share's retrains through",
    )
    args = parser.parse_args()
    history, params = FLIGHTS.load(), TrainParams()
    monthly = list(pd.date_range("2013-04-01", "2013-12-01", freq="MS"))
    policies = {"monthly, all history": [pd.Timestamp(START), *monthly]}
    policies |= {f"new labels >= {share:.0%} of the model's rows": new_label_retrains(history, FLIGHTS, START, share, DELAY)
                 for share in args.shares}  # fmt: skip
    static = monthly_auc(history, FLIGHTS, static_scores(history, FLIGHTS, START, params)).mean()
    print(f"static January-February model: mean monthly AUC {static:.4f}")
    for name, retrains in policies.items():
        started = time.monotonic()
        if name.startswith("monthly"):  # the 1st of each month with the month before fully labelled
            scores = scheduled_scores(history, FLIGHTS, START, retrains[1:], pd.Timedelta(0), params)
        else:
            scores = scheduled_scores(history, FLIGHTS, START, retrains, DELAY, params)
        auc = monthly_auc(history, FLIGHTS, scores)
        count = len(retrains) - 1 if name.startswith("monthly") else len(retrains)  # after the first model
        print(f"{name:40s} {count:2d} retrains  mean AUC {auc.mean():.4f}  (static {auc.mean() - static:+.4f})  "
              f"[{time.monotonic() - started:.0f} s]")  # fmt: skip
        print("    " + " ".join(f"{m[5:]}:{v:.3f}" for m, v in auc.items()))
        if not name.startswith("monthly"):
            print("    retrains on " + ", ".join(d.date().isoformat()[5:] for d in retrains))
    share = Settings().retrain_min_new_label_share
    retrains = new_label_retrains(history, FLIGHTS, START, share, DELAY)
    for rule in args.gated:
        metric, minimum = rule.split(":")
        started = time.monotonic()
        scores, verdicts = gated_scores(history, FLIGHTS, START, retrains, DELAY, params,
                                        GateConfig(improvement_metric=metric, min_improvement=float(minimum)))  # fmt: skip
        auc = monthly_auc(history, FLIGHTS, scores)
        promoted = sum("promote" in v for v in verdicts)
        print(f"share {share:.0%}, gated by {metric} >= +{float(minimum):.1%}: {promoted} of {len(retrains)} promoted  "
              f"mean AUC {auc.mean():.4f}  (static {auc.mean() - static:+.4f})  [{time.monotonic() - started:.0f} s]")  # fmt: skip
        print("    " + " ".join(f"{m[5:]}:{v:.3f}" for m, v in auc.items()))
        for verdict in verdicts:
            print("    " + verdict)


if __name__ == "__main__":
    main()
