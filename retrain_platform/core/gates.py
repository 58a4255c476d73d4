"""Promotion gates: every gate reports its value, threshold and verdict, or why it does not apply.

All gates must pass (or not apply) for a challenger to replace the champion. With no champion
yet, the comparative gates do not apply and the absolute floors decide.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from .live_comparison import CHALLENGER_BETTER, CHAMPION_BETTER, TOO_FEW_ROWS, LiveComparison


class Verdict(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "n/a"
    # Not yet decidable: the challenger keeps serving in shadow until live evidence decides it.
    PENDING = "pending"
    # Advisory live evidence against the challenger: shown, never blocking.
    WARN = "warn"


IMPROVEMENT_METRICS = ("auc", "f1")


class GateConfig(BaseModel):
    """The promotion gates' settings, in one shape: the evaluation asset's run config extends it,
    RETRAIN_RETRAIN_GATES holds it as JSON, and the drift sensor reads its label rule from it.
    Defaults from the original design (MAX_BRIER_DEGRADATION=0.01, ...), except the improvement rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # What a challenger must beat the champion by, relative, on the holdout. The original design
    # asked F1 +2 % (MIN_F1_IMPROVEMENT_PCT), but F1 sits at a threshold each model picked on its own
    # validation rows, so it moves with the threshold as much as with the model; AUC does not.
    improvement_metric: str = "auc"  # "auc" or "f1"
    min_improvement: float = 0.005
    max_brier_degradation: float = 0.01
    # A better F1 at the threshold can come with a worse ranking; a promotion never lowers AUC.
    max_auc_degradation: float = 0.0
    min_holdout_rows: int = 200
    min_label_coverage: float = 0.30  # of the predictions logged in the last `label_coverage_days`
    label_coverage_days: float = 7.0
    cooldown_days: float = 7.0
    max_latency_ms: float = 2.0
    # None: take the dataset spec's floor.
    auc_floor: float | None = None
    recall_floor: float | None = None
    # Champion against challenger on the same labelled live rows (shadow scores). "required": a
    # challenger that passed offline waits in shadow for that evidence and is rejected if the
    # champion is clearly better; "advisory": shown, never blocking; both let a challenger that the
    # evidence favours skip the cooldown (promoted early); "off": ignored.
    live_evidence: Literal["required", "advisory", "off"] = "advisory"

    @field_validator("improvement_metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in IMPROVEMENT_METRICS:
            raise ValueError(f"improvement_metric must be one of {IMPROVEMENT_METRICS}, not {metric!r}")
        return metric

    @classmethod
    def from_json(cls, text: str) -> GateConfig:
        """Gate settings from JSON (empty: the defaults); a typo in a name is an error, not ignored."""
        return cls.model_validate_json(text) if text.strip() else cls()


def dataset_gates(spec_gates: GateConfig, run: GateConfig) -> GateConfig:
    """The dataset's own gate settings (its YAML's `gates`), with what `run` sets otherwise than
    the defaults on top: what an evaluation applies, and what a sensor must expect it to apply."""
    defaults = GateConfig().model_dump()
    changed = {name: value for name, value in run.model_dump().items() if name in defaults and value != defaults[name]}
    return spec_gates.model_copy(update=changed)


@dataclass(frozen=True)
class GateResult:
    name: str
    verdict: Verdict
    value: float | None
    threshold: str
    detail: str


@dataclass(frozen=True)
class Evidence:
    """What the gates look at; everything measured before the gates run."""

    challenger: dict[str, float]
    champion: dict[str, float] | None
    holdout_rows: int
    label_coverage: float | None  # None: labels did not come from the prediction log
    days_since_promotion: float | None  # None: no champion
    deterministic: bool
    latency_ms: float
    champion_realised_auc: float | None = None  # on its labelled predictions; None: too few labels
    forced: bool = False  # a person's decision with `force`
    live: LiveComparison | None = None  # the challenger's shadow scores against the champion's


def rescue(evidence: Evidence, auc_floor: float, recall_floor: float) -> str | None:
    """Why the floors give way, or None: a champion that is itself under a floor on this holdout
    must never block a challenger that beats it there."""
    c, p = evidence.challenger, evidence.champion
    if p is None or c["auc"] <= p["auc"]:
        return None
    if p["auc"] < auc_floor:
        return (f"rescue: the champion's AUC {number(p['auc'])} is under the floor {setting(auc_floor)}; "
                f"the challenger's {number(c['auc'])} beats it")
    if p["recall"] < recall_floor:
        return f"rescue: the champion's recall {number(p['recall'])} is under the floor {setting(recall_floor)}"
    return None


def _floor(name: str, value: float, floor: float, champion: float | None, rescued: str | None, what: str) -> GateResult:
    if value >= floor:
        return _result(name, True, value, f">= {setting(floor)}", what)
    if rescued and champion is not None and value > champion:
        return _result(name, True, value, f">= {setting(floor)}", rescued)
    return _result(name, False, value, f">= {setting(floor)}", what)


def _result(name: str, passed: bool, value, threshold: str, detail: str) -> GateResult:
    return GateResult(name, Verdict.PASS if passed else Verdict.FAIL, value, threshold, detail)


def _not_applicable(name: str, threshold: str, why: str) -> GateResult:
    return GateResult(name, Verdict.NOT_APPLICABLE, None, threshold, why)


def count(value: float) -> str:
    """A count for people: 49,102."""
    return f"{round(value):,}"


def number(value: float, trim: bool = False) -> str:
    """A metric or ratio for people: 4 decimals (0.6412), thousands separated, never an exponent;
    a value below 0.001 keeps 4 significant digits (0.00002346) rather than reading as 0.
    `trim` drops trailing zeros, for the settings a threshold shows (0.01, not 0.0100)."""
    if not math.isfinite(value):
        return str(value)
    if value == 0 or abs(value) >= 0.001:
        text = f"{value:,.4f}"
    else:
        text = f"{value:.{3 - math.floor(math.log10(abs(value)))}f}"
    return text.rstrip("0").rstrip(".") if trim else text


def setting(value: float) -> str:
    """A threshold as it was set: 0.01, 2, 0.62."""
    return number(value, trim=True)


def share(value: float, decimals: int = 2) -> str:
    """A share as a percentage: 31.25%."""
    return f"{value:.{decimals}%}" if math.isfinite(value) else str(value)


def live_favours_challenger(evidence: Evidence, config: GateConfig) -> bool:
    return config.live_evidence != "off" and evidence.live is not None and evidence.live.verdict == CHALLENGER_BETTER


def _live_gate(evidence: Evidence, config: GateConfig) -> GateResult:
    mode, live = config.live_evidence, evidence.live
    threshold = {"required": "champion not better", "advisory": "advisory", "off": "off"}[mode]
    if mode == "off":
        return _not_applicable("live_evidence", threshold, "live evidence is off")
    if live is None or live.verdict == TOO_FEW_ROWS:
        rows = f" ({live.rows:,} labelled shadow rows, {live.positives:,} positive)" if live else ""
        if mode == "required":
            return GateResult("live_evidence", Verdict.PENDING, None, threshold,
                              f"the challenger serves in shadow until its live evidence is in{rows}")
        return _not_applicable("live_evidence", threshold, f"no live evidence yet{rows}")
    detail = (f"{live.verdict}: live AUC {number(live.challenger_auc)} vs champion {number(live.champion_auc)} "
              f"on the same {live.rows:,} labelled rows, difference [{live.low:+.4f}, {live.high:+.4f}]")  # fmt: skip
    if live.verdict != CHAMPION_BETTER:
        return _result("live_evidence", True, live.difference, threshold, detail)
    verdict = Verdict.FAIL if mode == "required" else Verdict.WARN
    return GateResult("live_evidence", verdict, live.difference, threshold, detail)


def evaluate_gates(evidence: Evidence, config: GateConfig, auc_floor: float, recall_floor: float) -> list[GateResult]:
    c, p = evidence.challenger, evidence.champion
    auc_floor = config.auc_floor if config.auc_floor is not None else auc_floor
    recall_floor = config.recall_floor if config.recall_floor is not None else recall_floor
    rescued = rescue(evidence, auc_floor, recall_floor)
    gates = [
        _result("holdout_rows", evidence.holdout_rows >= config.min_holdout_rows, evidence.holdout_rows,
                f">= {count(config.min_holdout_rows)}", "labelled rows the decision rests on"),
        _floor("auc_floor", c["auc"], auc_floor, p and p["auc"], rescued, "challenger AUC on the holdout"),
        _floor("recall_floor", c["recall"], recall_floor, p and p["recall"], rescued,
               "challenger recall at its decision threshold"),
        _result("deterministic", evidence.deterministic, float(evidence.deterministic), "== 1",
                "the same rows score the same, in bulk and one by one"),
        _result("one_row_latency", evidence.latency_ms <= config.max_latency_ms, evidence.latency_ms,
                f"<= {setting(config.max_latency_ms)} ms", "median time to score one row with the native model"),
    ]  # fmt: skip
    if evidence.label_coverage is None:
        gates.append(_not_applicable("label_coverage", f">= {config.min_label_coverage:.0%}",
                                     "labels come from the vendored history, not from the prediction log"))
    else:
        gates.append(_result("label_coverage", evidence.label_coverage >= config.min_label_coverage,
                             evidence.label_coverage, f">= {config.min_label_coverage:.0%}",
                             "share of logged predictions that have a label"))
    if p is None:
        why = "no champion yet: the absolute floors decide"
        gates += [
            _not_applicable(f"{config.improvement_metric}_improvement", f">= {config.min_improvement:.1%}", why),
            _not_applicable("brier_degradation", f"<= {setting(config.max_brier_degradation)}", why),
            _not_applicable("auc_degradation", f"<= {setting(config.max_auc_degradation)}", why),
            _not_applicable("live_evidence", config.live_evidence, why),
            _not_applicable("cooldown", f">= {setting(config.cooldown_days)} days", why),
        ]
        return gates
    metric = config.improvement_metric
    improvement = (c[metric] - p[metric]) / p[metric] if p[metric] > 0 else float("inf")
    gates.append(_result(f"{metric}_improvement", improvement >= config.min_improvement, improvement,
                         f">= {config.min_improvement:.1%}",
                         f"challenger {metric.upper()} {c[metric]:.4f} vs champion {p[metric]:.4f}"))
    degradation = c["brier"] - p["brier"]
    gates.append(_result("brier_degradation", degradation <= config.max_brier_degradation, degradation,
                         f"<= {setting(config.max_brier_degradation)}",
                         f"challenger Brier {c['brier']:.4f} vs champion {p['brier']:.4f}"))
    auc_drop = p["auc"] - c["auc"]
    gates.append(_result("auc_degradation", auc_drop <= config.max_auc_degradation, auc_drop,
                         f"<= {setting(config.max_auc_degradation)}",
                         f"challenger AUC {c['auc']:.4f} vs champion {p['auc']:.4f}"))
    gates.append(_live_gate(evidence, config))
    days = evidence.days_since_promotion
    realised = evidence.champion_realised_auc
    cooldown = f">= {setting(config.cooldown_days)} days"
    if evidence.forced:
        gates.append(_not_applicable("cooldown", cooldown, "a person's decision with force"))
    elif live_favours_challenger(evidence, config):
        gates.append(_not_applicable("cooldown", cooldown, "early promotion: live evidence favours the challenger"))
    elif rescued:
        gates.append(_not_applicable("cooldown", cooldown, rescued))
    elif realised is not None and realised < auc_floor:
        gates.append(_not_applicable("cooldown", cooldown, f"emergency: the champion's realised AUC "
                                     f"{number(realised)} on served traffic is under the floor {setting(auc_floor)}"))  # fmt: skip
    elif days is None:
        gates.append(_not_applicable("cooldown", cooldown, "champion has no promotion time"))
    else:
        gates.append(_result("cooldown", days >= config.cooldown_days, days,
                             f">= {setting(config.cooldown_days)} days", "days since the champion was promoted"))
    return gates


def reevaluation_due(live: LiveComparison | None, config: GateConfig, cooldown_over: bool) -> tuple[str, str] | None:
    """Why a challenger waiting in shadow should be evaluated again now (a run key's part, and the
    reason for people), or None while another evaluation would only find it waiting again."""
    verdict = live.verdict if live is not None else TOO_FEW_ROWS
    if config.live_evidence == "off":
        return None
    if verdict == CHALLENGER_BETTER:
        return "live-better", (f"live evidence favours the challenger: AUC {number(live.challenger_auc)} vs "
                               f"{number(live.champion_auc)} on the same {live.rows:,} labelled rows")  # fmt: skip
    if config.live_evidence == "required" and verdict == CHAMPION_BETTER:
        return "live-worse", f"live evidence favours the champion on {live.rows:,} labelled rows"
    if cooldown_over and (config.live_evidence == "advisory" or verdict != TOO_FEW_ROWS):
        return "cooldown-over", f"the cooldown is over and the live evidence says: {verdict}"
    return None


def all_passed(gates: list[GateResult]) -> bool:
    return all(g.verdict not in (Verdict.FAIL, Verdict.PENDING) for g in gates)


def awaits_live_evidence(gates: list[GateResult], config: GateConfig) -> bool:
    """Whether a challenger that did not pass keeps serving in shadow rather than being rejected:
    nothing failed but the cooldown (which live evidence for it can lift) or a pending live gate."""
    if config.live_evidence == "off" or all_passed(gates):
        return False
    return all(g.verdict != Verdict.FAIL or g.name == "cooldown" for g in gates)


def failed(gates: list[GateResult]) -> list[str]:
    return [g.name for g in gates if g.verdict == Verdict.FAIL]


# How each gate's value reads: rows are counted, shares are percentages, days and milliseconds
# carry their unit in the threshold; anything else is a metric or a ratio.
_VALUE_FORMATS = {
    "holdout_rows": count,
    "deterministic": count,
    "label_coverage": share,
    "cooldown": lambda days: f"{days:,.2f}",
}


def format_value(gate: GateResult) -> str:
    """A gate's value as people read it, "n/a" when there is none."""
    if gate.value is None:
        return "n/a"
    if gate.name.endswith("_improvement"):  # relative to the champion
        return share(gate.value)
    return _VALUE_FORMATS.get(gate.name, number)(gate.value)


def gates_markdown(gates: list[GateResult]) -> str:
    lines = ["| gate | value | threshold | verdict | detail |", "|---|---|---|---|---|"]
    for g in gates:
        value = format_value(g)
        lines.append(f"| {g.name} | {value} | {g.threshold} | **{g.verdict.value}** | {g.detail} |")
    return "\n".join(lines)


def gates_as_dicts(gates: list[GateResult]) -> list[dict]:
    return [{**asdict(g), "verdict": g.verdict.value} for g in gates]
