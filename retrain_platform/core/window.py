"""The data window: which slice of the source history a run trains and evaluates on."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp | None
    end: pd.Timestamp | None

    def label(self) -> str:
        if self.start is None or self.end is None:
            return "all rows (no time axis)"
        return f"{self.start.date().isoformat()}..{self.end.date().isoformat()}"


def select_window(frame: pd.DataFrame, spec: DatasetSpec, days: int, end: str = "") -> tuple[pd.DataFrame, Window]:
    """The `days` days up to and including `end` (an ISO date; empty: the newest row in the frame)."""
    if spec.timestamp is None:
        return frame, Window(None, None)
    if days <= 0:
        raise ValueError(f"window_days must be positive, got {days}")
    times = pd.to_datetime(frame[spec.timestamp], errors="coerce")
    stop = (pd.Timestamp(end) if end else times.max()).normalize() + pd.Timedelta(days=1)
    start = stop - pd.Timedelta(days=days)
    selected = frame[(times >= start) & (times < stop)]
    return selected, Window(start, stop - pd.Timedelta(microseconds=1))
