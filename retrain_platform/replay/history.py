"""What a replay plays: a dataset with an event time, its rows in time order, and the window of
days replayed (saved in the replay's home, so that its report needs only the home)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from retrain_platform.core.window import event_times
from retrain_platform.datasets import get_spec
from retrain_platform.datasets.spec import DatasetSpec

WINDOW_FILE = "replay.json"


class ReplayError(ValueError):
    """A replay that cannot start: an unknown dataset, one without an event time, an empty window."""


def replay_spec(name: str) -> DatasetSpec:
    try:
        spec = get_spec(name)
    except KeyError as err:
        raise ReplayError(err.args[0]) from None
    if not spec.timestamp:
        raise ReplayError(f"dataset {name!r} has no event time (`time:` in its YAML), so it cannot be replayed in "
                          "time order; a replay needs a dataset whose rows have one")  # fmt: skip
    return spec


def replay_history(spec: DatasetSpec) -> pd.DataFrame:
    """Every labelled row, event times as naive UTC (as serving logs them), oldest first."""
    history = spec.load()
    history[spec.timestamp] = event_times(history[spec.timestamp]).to_numpy()
    history = history[history[spec.timestamp].notna()]
    times = history[spec.timestamp]
    return history if times.is_monotonic_increasing else history.sort_values(spec.timestamp, kind="stable")


@dataclass(frozen=True)
class ReplayWindow:
    dataset: str
    start: str  # the first replayed day; the history before it bootstraps the platform
    end: str  # exclusive


def save_window(home: Path, spec: DatasetSpec, history: pd.DataFrame, start: str, end: str,
                bootstrap_days: int) -> ReplayWindow:  # fmt: skip
    """The window asked for; an empty start or end: `bootstrap_days` after the data's first day,
    the day after its last."""
    days = history[spec.timestamp].dt.normalize()
    window = ReplayWindow(
        dataset=spec.name,
        start=start or (days.min() + pd.Timedelta(days=bootstrap_days)).date().isoformat(),
        end=end or (days.max() + pd.Timedelta(days=1)).date().isoformat(),
    )
    if not (days >= window.start).any() or not (days < window.start).any() or window.start >= window.end:
        raise ReplayError(f"dataset {spec.name!r}: its rows ({days.min():%Y-%m-%d} to {days.max():%Y-%m-%d}) have no days "
                          f"both before {window.start} (to bootstrap from) and from it until {window.end} (to replay)")  # fmt: skip
    home.mkdir(parents=True, exist_ok=True)
    (home / WINDOW_FILE).write_text(json.dumps(asdict(window), indent=2) + "\n")
    return window


def load_window(home: Path) -> ReplayWindow | None:
    path = home.expanduser() / WINDOW_FILE
    return ReplayWindow(**json.loads(path.read_text())) if path.exists() else None
