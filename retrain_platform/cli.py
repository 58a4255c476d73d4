"""`retrain-platform`: the command line. It parses arguments and hands over: `dev` to the launcher,
`replay` and `replay-report` to the replay package (imported only then: it loads Dagster and pandas),
`spec infer` to the datasets package."""

import argparse
import sys
import time
from pathlib import Path

from retrain_platform.launcher import dev
from retrain_platform.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="retrain-platform", description="Run the retrain platform.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="run Dagster (UI + daemon), the MLflow UI and serving on embedded defaults")
    replay = sub.add_parser("replay", help="play a dataset's rows through the running platform on a simulated clock")
    replay.add_argument("--home", type=Path, required=True, help="a fresh folder for this replay's platform")
    replay.add_argument("--dataset", default="flights", help="a dataset with an event time (default: flights)")
    replay.add_argument("--start", default="", help="first replayed day (default: 59 days after the data's first)")
    replay.add_argument("--end", default="", help="exclusive (default: the day after the data's last)")
    replay.add_argument("--label-delay-hours", type=float, default=24.0)
    replay.add_argument("--window-days", type=int, default=0, help="data window of the retrains (0: all history)")
    replay.add_argument("--cooldown-hours", type=float, default=24.0, help="between two retrains")
    replay.add_argument("--min-new-label-share", type=float, default=0.25,
                        help="new labels (share of the newest model's rows) a drift retrain waits for")
    replay.add_argument("--max-model-age-days", type=float, default=0.0,
                        help="the newest retrain's data older than this asks for a retrain (0: never)")
    replay.add_argument("--gates", default="", help='JSON gate settings for retrains, e.g. \'{"cooldown_days": 1}\'')
    replay.add_argument("--port", type=int, default=8765, help="serving's port during the replay")
    report = sub.add_parser("replay-report", help="the month-by-month table, targets and plot of a finished replay")
    report.add_argument("--home", type=Path, required=True, help="the replay's folder")
    report.add_argument("--start", default="", help="default: the replay's own (saved in its folder)")
    report.add_argument("--end", default="", help="exclusive; default: the replay's own")
    add_spec_commands(sub)
    args = parser.parse_args(argv)
    if args.command == "spec":
        return infer_spec_command(args)
    if args.command == "dev":
        return dev(Settings.from_env())
    if args.command == "replay-report":
        return replay_report_command(args)
    return run_replay_command(args)


def add_spec_commands(sub) -> None:
    spec = sub.add_parser("spec", help="dataset specs (YAML files in the datasets folder)")
    spec_sub = spec.add_subparsers(dest="spec_command", required=True)
    infer = spec_sub.add_parser("infer", help="print a draft spec inferred from a data file, to review and keep")
    infer.add_argument("data", help="a Parquet or CSV file (with --package: a path inside that installed package)")
    infer.add_argument("--target", required=True, help="the column to predict")
    infer.add_argument("--name", required=True, help="the dataset's name, and its file's: NAME.yaml")
    infer.add_argument("--positive", help="the target value that is label 1 (default: 1 or true for a 0/1 column)")
    infer.add_argument("--time", help="the event time column, if the rows have one")
    infer.add_argument("--id", help="the id column (generated, under this name, when the data has none)")
    infer.add_argument("--package", help="an installed Python package whose folder holds DATA, e.g. sklearn.datasets")
    infer.add_argument("--no-header", action="store_true", help="CSV: the first line is data (columns column_0, ...)")


def infer_spec_command(args) -> int:
    from retrain_platform.datasets.infer import InferError, draft_from_file

    try:
        print(draft_from_file(args.data, args.name, args.target, args.positive, args.time, args.id,
                              args.package, header=not args.no_header), end="")  # fmt: skip
    except (InferError, OSError, ValueError) as err:
        print(f"retrain-platform spec infer: {err}", file=sys.stderr)
        return 2
    return 0


def run_replay_command(args) -> int:
    from retrain_platform.replay.history import ReplayError
    from retrain_platform.replay.runner import ReplayConfig, run_replay

    config = ReplayConfig(dataset=args.dataset, start=args.start, end=args.end, label_delay_hours=args.label_delay_hours,
                          window_days=args.window_days, cooldown_hours=args.cooldown_hours,
                          min_new_label_share=args.min_new_label_share, max_model_age_days=args.max_model_age_days,
                          gates=args.gates)  # fmt: skip
    started = time.monotonic()
    try:
        run_replay(args.home, config, args.port,
                   progress=lambda line: print(f"[{time.monotonic() - started:7.0f} s] {line}", flush=True))  # fmt: skip
    except ReplayError as err:
        print(f"retrain-platform replay: {err}", file=sys.stderr)
        return 2
    return replay_report_command(args)


def replay_report_command(args) -> int:
    from retrain_platform.replay.history import load_window

    window = load_window(args.home)
    if window is None:
        print(f"retrain-platform replay-report: {args.home} holds no replay (no replay.json)", file=sys.stderr)
        return 2
    settings = Settings(home=args.home, dataset=window.dataset)
    return write_replay_report(settings, args.start or window.start, args.end or window.end)


def write_replay_report(settings: Settings, start: str, end: str) -> int:
    from retrain_platform.replay.report import monthly_table, plot, summary

    table = monthly_table(settings, start, end)
    text = summary(settings, table, start)
    (settings.home_dir / "replay.md").write_text(text)
    print(text)
    print(f"plot: {plot(table, settings.home_dir / 'replay_auc.png', settings.dataset)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
