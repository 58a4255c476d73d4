"""Champion vs challenger on the same holdout rows: metrics, inference checks and gate verdicts."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .gates import Evidence, GateConfig, GateResult, Verdict, all_passed, awaits_live_evidence, evaluate_gates, failed
from .live_comparison import LiveComparison
from .metrics import classification_metrics
from .plots import roc_png
from .predictor import Predictor, is_deterministic, one_row_latency_ms


@dataclass(frozen=True)
class Evaluation:
    gates: list[GateResult]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    roc_png: bytes
    # Not passed, not rejected: the challenger keeps serving in shadow until live evidence decides.
    waiting: bool = False

    @property
    def passed(self) -> bool:
        return all_passed(self.gates)

    @property
    def failed_gates(self) -> list[str]:
        return failed(self.gates)

    @property
    def verdict(self) -> str:
        if self.waiting:
            why = [g.detail for g in self.gates if g.verdict in (Verdict.PENDING, Verdict.FAIL)]
            return f"wait in shadow for live evidence: {'; '.join(why)}"
        if not self.passed:
            return f"reject: {', '.join(self.failed_gates)} failed"
        rescues = {g.detail for g in self.gates if g.detail.startswith("rescue:")}
        return f"promote ({next(iter(rescues))})" if rescues else "promote"


def evaluate_challenger(
    challenger: Predictor,
    champion: Predictor | None,
    holdout: pd.DataFrame,
    config: GateConfig,
    label_coverage: float | None = None,
    days_since_promotion: float | None = None,
    champion_realised_auc: float | None = None,
    forced: bool = False,
    live: LiveComparison | None = None,
    challenger_scores=None,
) -> Evaluation:
    """`challenger_scores`: the challenger's holdout scores as they were measured when it was
    trained, by its fit that never learned the holdout (None: scored here)."""
    spec = challenger.spec
    labels = holdout[spec.target]
    if challenger_scores is None:
        challenger_scores = challenger.scores(holdout)
    elif len(challenger_scores) != len(holdout):
        raise ValueError(f"{len(challenger_scores)} stored holdout scores for {len(holdout)} holdout rows")
    curves = {f"challenger v{challenger.version}": challenger_scores}
    challenger_metrics = classification_metrics(labels, curves[f"challenger v{challenger.version}"], challenger.threshold)
    champion_metrics = None
    if champion is not None:
        curves[f"champion v{champion.version}"] = champion_scores = champion.scores(holdout)
        champion_metrics = classification_metrics(labels, champion_scores, champion.threshold)
    evidence = Evidence(
        challenger=challenger_metrics,
        champion=champion_metrics,
        holdout_rows=len(holdout),
        label_coverage=label_coverage,
        days_since_promotion=days_since_promotion if champion is not None else None,
        deterministic=is_deterministic(challenger, holdout),
        latency_ms=one_row_latency_ms(challenger, holdout),
        champion_realised_auc=champion_realised_auc if champion is not None else None,
        forced=forced,
        live=live if champion is not None else None,
    )
    gates = evaluate_gates(evidence, config, spec.auc_floor, spec.recall_floor)
    return Evaluation(gates, challenger_metrics, champion_metrics, roc_png(labels, curves),
                      waiting=awaits_live_evidence(gates, config))
