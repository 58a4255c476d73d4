"""When should the platform retrain, and how? Offline, on the vendored 2013 flights, with every
label known after a one-day delay: each retrain policy, with the training of before (LightGBM
early-stopped on the validation rows, which it never learns) and the training of now (LightGBM or
logistic, chosen on the validation rows, then refit on train + validation; by default the model that
serves learns the holdout too), in the same run.

A policy is a comma-separated list of KEY:VALUE (`retrain_timing` in core/decisions.py decides,
once a day, as with a monitor that always has a finding, as today's drift alarms do):
  share:S     retrain once the labels that came in since the model reach S of the rows it learned from
  age:N       retrain once the model's newest training day is N days behind the newest labelled day
  window:W    retrains learn the W days before the labels' end, as RETRAIN_RETRAIN_WINDOW_DAYS (0 or
              absent: all the history); the first model always learns January-February
  of:D        count the model's rows of only its last D days for the share (default: all it learned)
  monthly     retrain on the 1st of every month, the month before fully labelled

Prints, per policy and training, how many retrains follow the first model (trained on
January-February, as the replay's bootstrap; the monthly policy's March model is that same model),
the retrain days and the mean monthly AUC from March to December, beside the static
January-February model; then each policy's retrains passed through the promotion gates: a
retrained model serves only if it beats the model serving on its own holdout by each rule given as
METRIC:MIN_IMPROVEMENT (the rest of the gates at their defaults), with every verdict printed, and
whether any promotion lowered the holdout AUC. Issue 23's target: mean monthly AUC >= 0.71 with at
most 8 retrains, gated, none lowering the holdout AUC.

    .venv/bin/python benchmarks/retrain_policy.py [--policies monthly share:0.25 age:35,window:60]
        [--gated auc:0.005] [--trainings before now "now, learning the holdout"] [--half-lives 90]
        [--verdicts]
"""

from __future__ import annotations

import argparse
import pickle
import re
import time
from pathlib import Path

import pandas as pd

from retrain_platform.core.gates import GateConfig
from retrain_platform.core.split import Split
from retrain_platform.core.training import LIGHTGBM, TrainParams
from retrain_platform.datasets import FLIGHTS
from retrain_platform.replay.baselines import (
    gated_scores,
    monthly_auc,
    new_label_retrains,
    scheduled_scores,
    static_scores,
)

START, DELAY = "2013-03-01", pd.Timedelta(days=1)
TRAININGS = {
    "before": TrainParams(kinds=(LIGHTGBM,), refit=False),
    "now": TrainParams(),
    "now, learning the holdout": TrainParams(learn_holdout=True),
}


def trainings(names: list[str], half_lives: list[float]) -> dict[str, TrainParams]:
    chosen = {name: TRAININGS[name] for name in names}
    # Recency weighting on top of the default training (learning the holdout), one variant per half-life.
    chosen |= {f"now, learning the holdout, half-life {days:g} d": TrainParams(learn_holdout=True, recency_half_life_days=days)
               for days in half_lives}  # fmt: skip
    return chosen


def lowered(verdicts: list[str]) -> int:
    """Promotions whose challenger AUC on the holdout was below the champion's."""
    count = 0
    for verdict in verdicts:
        if "promote" in verdict:
            challenger, champion = verdict.split(" AUC ")[1].split(",")[0].split(" vs ")
            count += float(challenger) < float(champion.split()[-1])
    return count


class DiskCache(dict):
    """The trained models of one training, also kept as files under `folder` so that another run
    (another policy on the same days) reuses them. Keeps of the split only the holdout, which the
    gates judge on."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key) -> Path:
        cutoff, window = key
        return self.folder / f"{cutoff.date()}-w{window}.pkl"

    def __contains__(self, key) -> bool:
        return super().__contains__(key) or self._path(key).exists()

    def __getitem__(self, key):
        if not super().__contains__(key):
            super().__setitem__(key, pickle.loads(self._path(key).read_bytes()))
        return super().__getitem__(key)

    def __setitem__(self, key, trained) -> None:
        served, split, judged = trained
        kept = (served, Split(split.train.iloc[:0], split.validation.iloc[:0], split.holdout), judged)
        self._path(key).write_bytes(pickle.dumps(kept))
        super().__setitem__(key, kept)


def parse_policy(text: str) -> dict:
    """"share:0.25,age:35,window:60" -> {"share": 0.25, "age": 35.0, "window": 60}."""
    policy: dict = {"share": None, "age": None, "window": 0, "of": None, "monthly": False}
    for part in text.split(","):
        key, _, value = part.partition(":")
        if key == "monthly":
            policy["monthly"] = True
        elif key in ("share", "age"):
            policy[key] = float(value)
        elif key in ("window", "of"):
            policy[key] = int(value)
        else:
            raise SystemExit(f"unknown policy part {part!r} in {text!r}")
    return policy


def retrain_days(history: pd.DataFrame, policy: dict) -> tuple[list[pd.Timestamp], pd.Timedelta]:
    if policy["monthly"]:  # the 1st of each month with the month before fully labelled
        return list(pd.date_range("2013-04-01", "2013-12-01", freq="MS")), pd.Timedelta(0)
    if policy["share"] is None and policy["age"] is None:
        raise SystemExit("a policy needs share:, age: or monthly")
    return new_label_retrains(history, FLIGHTS, START, policy["share"], DELAY, policy["window"], policy["age"],
                              policy["of"]), DELAY  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="*", default=["monthly", "share:0.25", "share:0.25,window:60"])
    parser.add_argument("--gated", nargs="*", default=["auc:0.005"],
                        help="improvement rules METRIC:MIN to replay each policy's retrains through")  # fmt: skip
    parser.add_argument("--trainings", nargs="*", choices=list(TRAININGS), default=["now, learning the holdout"])
    parser.add_argument("--half-lives", type=float, nargs="*", default=[],
                        help="also today's training with rows weighted by recency, per half-life in days")  # fmt: skip
    parser.add_argument("--verdicts", action="store_true", help="print every gate verdict")
    parser.add_argument("--no-static", action="store_true", help="skip the static model")
    parser.add_argument("--champion-unseen", action="store_true",
                        help="the gates also judge on only the holdout rows the champion did not learn from")  # fmt: skip
    parser.add_argument("--cache", type=Path, help="keep trained models in this folder for later runs (same code, same data)")
    args = parser.parse_args()
    history = FLIGHTS.load()
    variants = trainings(args.trainings, args.half_lives)
    # Models shared by the policies that retrain on one day (and by later runs, with --cache).
    caches: dict[str, dict] = {name: DiskCache(args.cache / re.sub(r"\W+", "-", name)) if args.cache else {}
                               for name in variants}  # fmt: skip
    statics = {}
    for training, params in variants.items():
        if not args.no_static:
            statics[training] = monthly_auc(history, FLIGHTS, static_scores(history, FLIGHTS, START, params, caches[training])).mean()
            print(f"static January-February model, training {training}: mean monthly AUC {statics[training]:.4f}", flush=True)
    for name in args.policies:
        policy = parse_policy(name)
        retrains, delay = retrain_days(history, policy)
        print(f"{name}: {len(retrains)} retrains on " + ", ".join(d.date().isoformat()[5:] for d in retrains), flush=True)
        for training, params in variants.items():
            started = time.monotonic()
            scores = scheduled_scores(history, FLIGHTS, START, retrains, delay, params, caches[training], policy["window"])
            auc = monthly_auc(history, FLIGHTS, scores)
            print(f"  {name:32s} training {training}: {len(retrains):2d} retrains, ungated  mean AUC {auc.mean():.4f}"
                  f"{f'  (static {auc.mean() - statics[training]:+.4f})' if training in statics else ''}  "
                  f"[{time.monotonic() - started:.0f} s]")  # fmt: skip
            print("      " + " ".join(f"{m[5:]}:{v:.3f}" for m, v in auc.items()), flush=True)
            for rule in args.gated:
                for unseen in (False, True) if args.champion_unseen else (False,):
                    metric, minimum = rule.split(":")
                    gates = GateConfig(improvement_metric=metric, min_improvement=float(minimum))
                    scores, verdicts = gated_scores(history, FLIGHTS, START, retrains, delay, params, gates,
                                                    caches[training], policy["window"], unseen)  # fmt: skip
                    auc = monthly_auc(history, FLIGHTS, scores)
                    promoted = sum("promote" in v for v in verdicts)
                    print(f"  {name:32s} training {training}: {len(retrains):2d} retrains, gated by {metric} >= "
                          f"+{float(minimum):.1%}{' on rows the champion did not learn' if unseen else ''}: "
                          f"{promoted} promoted ({lowered(verdicts)} lowered the holdout AUC)  mean AUC {auc.mean():.4f}")  # fmt: skip
                    print("      " + " ".join(f"{m[5:]}:{v:.3f}" for m, v in auc.items()), flush=True)
                    for verdict in verdicts if args.verdicts else []:
                        print("      " + verdict, flush=True)


if __name__ == "__main__":
    main()
