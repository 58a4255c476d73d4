"""Drift alarms from the monitoring log's checks: one per episode, not one per check.

Drift that persists (a seasonal destination mix, say) is flagged by every check until the model is
replaced; an alarm on each of them is an alarm that is always on, and gets switched off. So, as an
alert manager groups firings, an episode of a model version starts with a check at level flag or
alert after `quiet_days` with none, and raises one alarm; later checks of the episode are its
history (their levels stay in the log and its plots). An alert within an episode of flags is news
and raises too. Pure pandas, no I/O.
"""

from __future__ import annotations

import pandas as pd

from .monitoring import ALARM_LEVELS, ALERT

QUIET_DAYS = 7.0


def check_times(checks: pd.DataFrame) -> pd.Series:
    """When each check's traffic was, or when it ran where the log has no event time."""
    return pd.to_datetime(checks["event_time"], utc=True).fillna(pd.to_datetime(checks["checked_at"], utc=True))


def raised_alarms(checks: pd.DataFrame, quiet_days: float = QUIET_DAYS) -> pd.DataFrame:
    """The checks (oldest first, as the log gives them) that raise an alarm, oldest first, each with
    its episode: `episode_checks` (flagged checks in it), `episode_last` (the newest one's time) and
    `episode_columns` (every column drifted in it, most often first)."""
    columns = [*checks.columns, "episode_checks", "episode_last", "episode_columns"]
    flagged = checks[checks["level"].isin(ALARM_LEVELS)].assign(when=lambda c: check_times(c))
    quiet = pd.Timedelta(days=quiet_days)
    raised, episodes = [], {}  # raised: (raising check, its episode); episodes: version -> open episode
    for index, check in flagged.iterrows():
        episode = episodes.get(check["model_version"])
        if episode is None or check["when"] - episode["last"] > quiet:
            episode = episodes[check["model_version"]] = {"last": check["when"], "columns": [], "alert": False}
            raised.append((index, episode))
        elif check["level"] == ALERT and not episode["alert"]:
            raised.append((index, episode))  # an escalation within the episode is news
        episode["last"], episode["alert"] = check["when"], episode["alert"] or check["level"] == ALERT
        episode["columns"].append(list(check["drifted_columns"] or []))
    rows = []
    for index, episode in raised:
        seen = pd.Series([c for cols in episode["columns"] for c in cols], dtype=object).value_counts()
        rows.append({**checks.loc[index].to_dict(), "episode_checks": len(episode["columns"]),
                     "episode_last": episode["last"], "episode_columns": list(seen.index)})  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
