"""The model's health for the Retrain page and GET /retrain/health: AUC day by day, the last drift
alarms and the last retraining decisions, read from the monitoring log and the decisions archive.

Blocking I/O (a SQL query, file reads): call `read_health` off the event loop. What is read is
capped, so the cost stays the same whatever the history.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from retrain_platform.core.alarms import QUIET_DAYS, check_times, raised_alarms
from retrain_platform.decisions.folder import oldest_first
from retrain_platform.monitoring.log import MonitoringLog

from .schemas import HealthAlarm, HealthDay, HealthDecision, ModelHealthSummary

logger = logging.getLogger(__name__)

CHECKS_READ = 2_000  # the newest checks of the monitoring log
DECISIONS_READ = 20  # the newest files of the decisions archive
DAYS = 14
ALARMS = 10


def _value(value):
    """A plain value for JSON: pandas' missing values (NaN, NaT, None) become None."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def _row(check) -> dict:
    return {name: _value(value) for name, value in check.items()}


def health_days(checks: pd.DataFrame, days: int = DAYS) -> list[HealthDay]:
    """The newest check of each day, newest day first. A day is the traffic's (its newest event
    time), not the check's, when the log has it: a replay or a late check of old traffic then
    lands on the day it judged."""
    if checks.empty:
        return []
    newest = checks.assign(day=check_times(checks).dt.date).groupby("day", sort=True).tail(1)  # the log is oldest first
    newest = newest.sort_values("day", kind="stable").tail(days).iloc[::-1]
    return [HealthDay(**{k: v for k, v in _row(check).items() if k in HealthDay.model_fields})
            for _, check in newest.iterrows()]  # fmt: skip


def health_alarms(checks: pd.DataFrame, quiet_days: float = QUIET_DAYS, limit: int = ALARMS) -> list[HealthAlarm]:
    """The newest alarms first: one per episode of drift, with how long it has lasted."""
    alarms = raised_alarms(checks, quiet_days).tail(limit).iloc[::-1]
    return [HealthAlarm(**{k: v for k, v in _row(check).items() if k in HealthAlarm.model_fields})
            for _, check in alarms.iterrows()]  # fmt: skip


def newest_decisions(archive: Path, limit: int = DECISIONS_READ) -> tuple[list[HealthDecision], int]:
    """The newest `limit` archived decisions, newest first (the order `DecisionFolder.taken` keeps:
    by modification time, then name), and how many of them could not be read. Only the newest
    files are opened, however large the archive grows."""
    decisions, unreadable = [], 0
    for path in oldest_first(archive)[-limit:][::-1]:
        try:
            record = json.loads(path.read_text())
            outcome = record.get("outcome") or {}
            decisions.append(HealthDecision(**record, status=outcome.get("status")))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError, AttributeError) as err:  # hand-edited or foreign files
            logger.warning("decisions archive: %s unreadable: %s", path.name, err)
            unreadable += 1
    return decisions, unreadable


def read_checks(store_url: str, limit: int = CHECKS_READ) -> pd.DataFrame:
    log = MonitoringLog(store_url)
    try:
        return log.history(limit=limit)
    finally:
        log.close()


def read_health(store_url: str, archive: Path, model_name: str, model_version: str | None,
                alarm_quiet_days: float = QUIET_DAYS) -> ModelHealthSummary:
    """Never raises for an unreadable log: the page is still worth showing, with the decisions."""
    checks, error = None, None
    try:
        checks = read_checks(store_url)
    except (sa.exc.SQLAlchemyError, OSError) as err:
        # The details (host, path) stay in serving's log: this answer is not behind a token.
        logger.warning("monitoring log unreadable: %s", err)
        error = f"{type(err).__name__}; see serving's log"
    decisions, unreadable = newest_decisions(archive)
    return ModelHealthSummary(
        model_name=model_name,
        model_version=model_version,
        monitoring_log="unreadable" if checks is None else "empty" if checks.empty else "ok",
        monitoring_error=error,
        checks_read=0 if checks is None else len(checks),
        days=[] if checks is None else health_days(checks),
        alarms=[] if checks is None else health_alarms(checks, alarm_quiet_days),
        decisions=decisions,
        decisions_unreadable=unreadable,
    )
