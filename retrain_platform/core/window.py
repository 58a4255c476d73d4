"""The data window: which slice of the source history a run trains and evaluates on."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from retrain_platform.datasets.spec import DatasetSpec


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp | None
    end: pd.Timestamp | None

    ATTR = "window"

    def store_on(self, frame: pd.DataFrame) -> None:
        """Carry the window with the frame, as strings so that Parquet and JSON can hold it."""
        frame.attrs[self.ATTR] = [None if t is None else t.isoformat() for t in (self.start, self.end)]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Window":
        start, end = frame.attrs.get(cls.ATTR, (None, None))
        return cls(*(None if t is None else pd.Timestamp(t) for t in (start, end)))

    def label(self) -> str:
        if self.start is None or self.end is None:
            return "all rows (no time axis)"
        return f"{self.start.date().isoformat()}..{self.end.date().isoformat()}"


def select_window(frame: pd.DataFrame, spec: DatasetSpec, days: int, end: str = "") -> tuple[pd.DataFrame, Window]:
    """The `days` days up to and including `end` (an ISO date; empty: the newest row in the frame);
    `days` 0: everything up to `end`, from the frame's first day."""
    if spec.timestamp is None:
        return frame, Window(None, None)
    if days < 0:
        raise ValueError(f"window_days must be positive, or 0 for all the history, got {days}")
    times = pd.to_datetime(frame[spec.timestamp], errors="coerce")
    stop = (pd.Timestamp(end) if end else times.max()).normalize() + pd.Timedelta(days=1)
    start = times.min().normalize() if days == 0 else stop - pd.Timedelta(days=days)
    selected = frame[(times >= start) & (times < stop)]
    return selected, Window(start, stop - pd.Timedelta(microseconds=1))


def event_times(values) -> pd.Series:
    """Event times as naive UTC, whatever clients sent: a time with a zone ("...Z", "+02:00") is
    converted to UTC, one without is taken as UTC, one that does not parse is NaT."""
    return pd.to_datetime(pd.Series(values), errors="coerce", utc=True, format="ISO8601").dt.tz_convert(None)
