"""Retraining decisions: the JSON record people and the platform exchange, and the policy.

The record follows the original design's decision file (decision_date, performance_score, retrain,
reason) plus what an audit needs (trigger, model version, ids). The policy enforces a cooldown
between retrains and a limit per rolling week, and always says why a retrain will or will not run.
A manual request may set `force` to skip the cooldown, never the weekly limit: people may know
something the monitor does not, but the limit protects the registry and the budget from loops.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

TRIGGERS = ("drift", "performance", "schedule", "manual")
RETRAINING = "; retraining"


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

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "decision_date": self.decision_date.isoformat()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> RetrainingDecision:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DecisionError(f"not JSON: {err}") from err
        if not isinstance(data, dict):
            raise DecisionError("a decision is a JSON object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise DecisionError(f"unknown fields: {sorted(unknown)}")
        for name in ("decision_date", "retrain", "reason", "trigger"):
            if name not in data:
                raise DecisionError(f"missing field {name!r}")
        try:
            date = datetime.fromisoformat(str(data["decision_date"]))
        except ValueError as err:
            raise DecisionError(f"decision_date: not an ISO date: {data['decision_date']!r}") from err
        if not isinstance(data["retrain"], bool):
            raise DecisionError(f"retrain: must be true or false, got {data['retrain']!r}")
        if data["trigger"] not in TRIGGERS:
            raise DecisionError(f"trigger: must be one of {TRIGGERS}, got {data['trigger']!r}")
        score = data.get("performance_score")
        if score is not None and not isinstance(score, int | float):
            raise DecisionError(f"performance_score: must be a number or null, got {score!r}")
        if "decision_id" in data and not str(data["decision_id"]).strip():
            raise DecisionError("decision_id: must not be empty")
        return cls(**{**data, "decision_date": date if date.tzinfo else date.astimezone()})


@dataclass(frozen=True)
class RetrainPolicy:
    cooldown_hours: float = 24.0
    max_per_week: int = 3


def apply_policy(wish: RetrainingDecision, recent_retrains: list[datetime], now: datetime,
                 policy: RetrainPolicy = RetrainPolicy()) -> RetrainingDecision:  # fmt: skip
    """The decision that will be acted on: `wish` as asked, or refused with the reason why."""
    if not wish.retrain:
        return wish
    week = [t for t in recent_retrains if now - timedelta(days=7) < t <= now]
    if len(week) >= policy.max_per_week:
        return replace(wish, retrain=False, reason=f"{wish.reason}; not retraining: weekly limit reached "
                       f"({len(week)} retrains since {(now - timedelta(days=7)).date()}, at most {policy.max_per_week})")  # fmt: skip
    latest = max(week, default=None)
    if latest is not None and not wish.force and now - latest < timedelta(hours=policy.cooldown_hours):
        hours = (now - latest).total_seconds() / 3600
        return replace(wish, retrain=False, reason=f"{wish.reason}; not retraining: cooldown, the last retrain "
                       f"was {hours:.1f} h ago (< {policy.cooldown_hours:g} h)")  # fmt: skip
    # The sensor re-applies the policy to decisions the platform already made: say it once.
    return wish if wish.reason.endswith(RETRAINING) else replace(wish, reason=wish.reason + RETRAINING)
