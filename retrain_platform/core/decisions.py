"""Retraining decisions: the JSON record people and the platform exchange, and the policy.

The record follows the original design's decision file (decision_date, performance_score, retrain,
reason) plus what an audit needs (trigger, model version, dataset, drift share, ids, who wrote it).

The policy enforces a cooldown between retrains and a limit per rolling 7 days, and always says why
a retrain will or will not run. Choices:

- Every retrain run counts, whatever its outcome (a rejected or failed run spent the budget too)
  and whoever launched it (sensor, schedule, the Materialize button).
- A manual request may set `force` to skip the cooldown, never the weekly limit: people may know
  something the monitor does not, but the limit protects the registry and the budget from loops
  (a script that drops a forced file every minute retrains at most `max_per_week` times a week).
- Retrains after `now` are ignored: `now` comes from the platform clock, which a replay simulates,
  and a run created by the wall clock during a replay lies in the simulated future.
- A wish not to retrain is never turned into a retrain.

Pure: no Dagster, no I/O, `now` is an argument.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta

# What asks for a retrain: monitoring's findings (retrain_reasons), the weekly schedule, a person.
TRIGGERS = ("drift", "performance", "challenger", "age", "schedule", "manual")
RETRAINING = "; retraining"
WEEK = timedelta(days=7)
# What the decision-file sensor adds to an archived decision; ignored when such a file is read again.
OUTCOME_FIELD = "outcome"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_ID_NAMESPACE = uuid.UUID("6f1c1d2e-5b1a-4d8e-9a43-0c6f3d1e7b21")


class DecisionError(ValueError):
    """A decision file that cannot be read; the message names the field."""


@dataclass(frozen=True)
class RetrainingDecision:
    decision_date: datetime
    retrain: bool
    reason: str
    trigger: str
    performance_score: float | None = None
    model_version: str | None = None
    dataset: str | None = None
    drift_share: float | None = None
    source: str = "unknown"
    force: bool = False
    decision_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def to_dict(self) -> dict:
        return {**asdict(self), "decision_date": self.decision_date.isoformat()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RetrainingDecision:
        """Parse and validate a decision file; every error names the field at fault.

        Required: decision_date (ISO 8601; without a zone it is read as UTC), retrain, reason,
        trigger. A file without a decision_id gets one derived from its content, so the same file
        dropped twice is the same decision (and is acted on once).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DecisionError(f"not JSON: {err}") from err
        if not isinstance(data, dict):
            raise DecisionError(f"a decision is a JSON object, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k != OUTCOME_FIELD}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DecisionError(
                f"unknown field(s) {', '.join(map(repr, unknown))}; known fields: {', '.join(sorted(known))}"
            )
        for name in ("decision_date", "retrain", "reason", "trigger"):
            if name not in data:
                raise DecisionError(f"missing field {name!r}")
        values = {
            "decision_date": _date(data["decision_date"]),
            "retrain": _bool(data, "retrain"),
            "reason": _text(data, "reason", required=True),
            "trigger": data["trigger"],
            "performance_score": _number(data, "performance_score"),
            "model_version": _version(data.get("model_version")),
            "dataset": _text(data, "dataset"),
            "drift_share": _number(data, "drift_share", low=0.0, high=1.0),
            "source": _text(data, "source") or "unknown",
            "force": _bool(data, "force", default=False),
        }
        if values["trigger"] not in TRIGGERS:
            raise DecisionError(f"trigger: must be one of {', '.join(TRIGGERS)}, got {data['trigger']!r}")
        if "decision_id" in data:
            decision_id = data["decision_id"]
            if not isinstance(decision_id, str) or not _ID.fullmatch(decision_id):
                raise DecisionError("decision_id: must be a string of up to 128 letters, digits and ._:- "
                                    f"(a UUID is best), got {decision_id!r}")  # fmt: skip
        else:
            decision_id = str(uuid.uuid5(_ID_NAMESPACE, json.dumps(data, sort_keys=True)))
        return cls(**values, decision_id=decision_id)


def _date(value) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise DecisionError(f"decision_date: must be an ISO 8601 date or time, got {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bool(data: dict, name: str, default: bool | None = None) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise DecisionError(f"{name}: must be true or false, got {value!r}")
    return value


def _text(data: dict, name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise DecisionError(f"{name}: must be {'a non-empty' if required else 'a'} string, got {value!r}")
    return value


def _number(data: dict, name: str, low: float = -math.inf, high: float = math.inf) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        bounds = "" if math.isinf(low) else f" between {low:g} and {high:g}"
        raise DecisionError(f"{name}: must be a number{bounds} or null, got {value!r}")
    return float(value)


def _version(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise DecisionError(f"model_version: must be a registry version (string or integer) or null, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class RetrainPolicy:
    cooldown_hours: float = 24.0  # at least this long between two retrains (a forced request may skip it)
    max_per_week: int = 3  # at most this many retrains in any rolling 7 days (nobody may skip it)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def apply_policy(wish: RetrainingDecision, recent_retrains: list[datetime], now: datetime,
                 policy: RetrainPolicy = RetrainPolicy()) -> RetrainingDecision:  # fmt: skip
    """The decision that will be acted on: `wish` as asked, or refused with the reason why.

    `recent_retrains` are the times of earlier retrain runs (naive times are UTC); `now` is the
    platform clock's. The reason keeps what was asked and adds the verdict, e.g.
    "drift share 0.35 > 0.20 on 6 of 17 columns; retraining" or "...; not retraining: weekly limit
    reached (3 retrains since 2013-03-01, at most 3)". Applying the policy to a decision it already
    approved changes nothing (the sensor re-applies it to the decisions the platform wrote).
    """
    if not wish.retrain:
        return wish
    now = _utc(now)
    past = sorted(t for t in map(_utc, recent_retrains) if t <= now)
    week = [t for t in past if now - WEEK < t]
    if len(week) >= policy.max_per_week:
        return replace(wish, retrain=False, reason=f"{wish.reason}; not retraining: weekly limit reached "
                       f"({len(week)} retrains since {(now - WEEK).date()}, at most {policy.max_per_week})")  # fmt: skip
    if wish.reason.endswith(RETRAINING):  # approved before: say it once
        return wish
    reason = wish.reason
    if past and now - past[-1] < timedelta(hours=policy.cooldown_hours):
        hours = (now - past[-1]).total_seconds() / 3600
        if not wish.force:
            return replace(wish, retrain=False, reason=f"{reason}; not retraining: cooldown, the last retrain "
                           f"was {hours:.1f} h ago (< {policy.cooldown_hours:g} h)")  # fmt: skip
        reason += f"; forced past the cooldown (the last retrain was {hours:.1f} h ago)"
    return replace(wish, reason=reason + RETRAINING)


@dataclass(frozen=True)
class RetrainTiming:
    """When a model has aged enough that a retrain is worth its cost, in what the platform knows at
    the time: the labels logged since the newest model was trained and that model's training window.

    - `min_new_label_share`: a finding (drift, performance) launches a retrain only once the labels
      that arrived since the model reach this share of the rows a retrain would learn from (0: at
      once). Measured against the retrain's window (RETRAIN_RETRAIN_WINDOW_DAYS), not all history:
      against a growing all-history count the same share asks for ever rarer retrains.
    - `max_model_age_days`: a retrain is due, finding or not, once the newest labelled day is this
      many days past the model's newest training row (None: never on age alone). The floor on the
      cadence when monitoring has nothing to say, as it has on a world that drifts slowly.
    """

    min_new_label_share: float = 0.25
    max_model_age_days: float | None = None


def retrain_timing(new_labels: int, window_rows: int | None, model_age_days: float | None,
                   timing: RetrainTiming = RetrainTiming()) -> tuple[bool, bool, str]:  # fmt: skip
    """(due, enough_evidence, why) for the newest model.

    `new_labels`: labelled rows that arrived since the model was trained; `window_rows`: the rows a
    retrain now would learn from (the retrain window's labelled rows; None: unknown);
    `model_age_days`: days from the model's newest training row to the newest labelled row (None:
    unknown). `due`: retrain now, whatever monitoring says (the model is too old). `enough_evidence`:
    a finding may launch a retrain (enough new labels, or due). `why` says which, with the figures.
    """
    if timing.min_new_label_share < 0:
        raise ValueError(f"min_new_label_share must be >= 0, got {timing.min_new_label_share}")
    if timing.max_model_age_days is not None and timing.max_model_age_days <= 0:
        raise ValueError(f"max_model_age_days must be > 0 or None, got {timing.max_model_age_days}")
    limit = timing.max_model_age_days
    if limit is not None and model_age_days is not None and model_age_days >= limit:
        return True, True, f"model age {model_age_days:.1f} days >= {limit:g}: retrain due"
    share = timing.min_new_label_share
    if share == 0 or not window_rows:
        return False, True, "no new-label rule" if share == 0 else "new labels: window size unknown"
    needed = share * window_rows
    said = (f"{new_labels:,} labels since the model, {needed:,.0f} needed "
            f"({share:.0%} of the {window_rows:,} rows of the retrain window)")  # fmt: skip
    return False, new_labels >= needed, said
