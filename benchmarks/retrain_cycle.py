"""Orchestration overhead of a retrain cycle: the `retrain` job through Dagster against the same
functions called from a plain script, on the whole 2013 year, measured in one run.

Each variant runs in its own fresh process (so peak memory is its own) with its own empty home
(MLflow store, IO storage, Dagster instance). Target: Dagster wall time <= 1.25x the script's,
peak memory <= 2 GiB.

    .venv/bin/python benchmarks/retrain_cycle.py [--repeats 2] [--window-days 365]
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1024**3


def plain_cycle(home: Path, window_days: int) -> None:
    import mlflow

    from retrain_platform.core.evaluation import evaluate_challenger
    from retrain_platform.core.features import build_features
    from retrain_platform.core.gates import GateConfig
    from retrain_platform.core.split import reference_rows, time_split
    from retrain_platform.core.training import train_candidate
    from retrain_platform.core.validation import (
        check_row_count,
        check_schema,
        check_window_coverage,
    )
    from retrain_platform.core.window import select_window
    from retrain_platform.datasets import FLIGHTS as spec
    from retrain_platform.registry import ModelRegistry, ensure_experiment
    from retrain_platform.registry.tracking import record_candidate
    from retrain_platform.settings import Settings

    settings = Settings(home=home)
    raw, window = select_window(spec.load(), spec, window_days)
    features = build_features(raw, spec)
    outcomes = [check_schema(features, spec), check_row_count(features, spec),
                check_window_coverage(features, spec, window.start, window.end)]  # fmt: skip
    assert all(o.passed for o in outcomes), outcomes
    split = time_split(features, spec)
    trained = train_candidate(split, spec)
    registry = ModelRegistry(settings.tracking_uri, spec.model_name)
    experiment = ensure_experiment(settings.tracking_uri, f"retrain-{spec.name}", settings.artifact_root)
    with mlflow.start_run(experiment_id=experiment) as run:
        version = record_candidate(mlflow, registry, trained, window.label(), {}, split.holdout.head(3))
    reference = reference_rows(split)
    registry.log_reference(run.info.run_id, reference.assign(prediction=registry.load_predictor(version).scores(reference)))
    evaluation = evaluate_challenger(registry.load_predictor(version), None, split.holdout, GateConfig())
    registry.tag_version(version, {"evaluation": "passed" if evaluation.passed else "rejected"})
    registry.log_file(run.info.run_id, evaluation.roc_png, "evaluation/roc.png")
    assert evaluation.passed, evaluation.verdict
    registry.promote(version, expected_current=None)


def dagster_cycle(home: Path, window_days: int) -> None:
    import dagster as dg

    from retrain_platform.definitions import build_definitions
    from retrain_platform.settings import Settings

    defs = build_definitions(Settings(home=home))
    (home / "dagster").mkdir(parents=True)
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        result = defs.resolve_job_def("retrain").execute_in_process(
            instance=instance, run_config={"ops": {"raw_data": {"config": {"window_days": window_days}}}}
        )
    assert result.success


def measure(variant: str, window_days: int) -> dict:
    """Run one variant in a fresh interpreter; its imports are counted, as a user would pay them."""
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([sys.executable, __file__, "--child", variant, "--home", home, "--window-days", str(window_days)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(variant: str, home: Path, window_days: int) -> None:
    start = time.perf_counter()
    {"plain": plain_cycle, "dagster": dagster_cycle}[variant](home, window_days)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({"wall_s": wall, "peak_bytes": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--window-days", type=int, default=365)
    parser.add_argument("--child", choices=["plain", "dagster"])
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.home, args.window_days)
        return
    runs = {"plain": [], "dagster": []}
    for i in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        for variant in runs:
            runs[variant].append(measure(variant, args.window_days))
            print(f"  run {i + 1} {variant:8s} {runs[variant][-1]['wall_s']:6.1f} s  "
                  f"peak {runs[variant][-1]['peak_bytes'] / GIB:.2f} GiB", flush=True)  # fmt: skip
    wall = {v: statistics.median(r["wall_s"] for r in runs[v]) for v in runs}
    peak = {v: max(r["peak_bytes"] for r in runs[v]) for v in runs}
    print(f"retrain cycle, window {args.window_days} days, median of {args.repeats}:")
    for v in runs:
        print(f"  {v:8s} wall {wall[v]:6.1f} s   peak memory {peak[v] / GIB:.2f} GiB")
    ratio = wall["dagster"] / wall["plain"]
    print(f"  ratio dagster/plain wall time: {ratio:.2f}x (target <= 1.25x) {'OK' if ratio <= 1.25 else 'MISSED'}")
    print(f"  dagster peak memory: {peak['dagster'] / GIB:.2f} GiB (target <= 2 GiB) "
          f"{'OK' if peak['dagster'] <= 2 * GIB else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
