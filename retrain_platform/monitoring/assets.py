"""Monitoring: served traffic against the production model's reference, for people and sensors."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from retrain_platform.core import clock
from retrain_platform.core.decisions import RetrainingDecision, apply_policy
from retrain_platform.core.drift_report import evidently_drift_report
from retrain_platform.core.monitoring import OK, DriftPolicy, Evidence, retrain_reasons
from retrain_platform.decisions.folder import DecisionFolder
from retrain_platform.decisions.resources import DecisionsResource
from retrain_platform.decisions.runs import recent_retrains
from retrain_platform.names import RETRAIN_JOB, TRIGGER_TAG
from retrain_platform.resources import DatasetResource, RegistryResource

from .resources import MonitoringResource

NO_DRIFT_CHECK = "no_drift"


class DriftReportConfig(dg.Config):
    window_rows: int = 0  # the newest predictions of the production model; 0: the monitoring resource's window
    false_alarm_rate: float = 0.0  # 0: the monitoring resource's rate
    min_importance: float = 0.0  # 0: the monitoring resource's share
    min_rows: int = DriftPolicy.min_rows


def performance_metadata(evidence: Evidence) -> dict:
    """Numbers the UI plots over time, with the estimate's caveat beside them."""
    values = evidence.figures()
    values["estimate_caveat"] = ("expected AUC from calibrated scores: holds when the features shift, not when "
                                 "their relation to the label changes; it never decides alone")  # fmt: skip
    return values


def _proxies_table(check) -> str:
    now, then = check.drift.raw.proxies, check.drift.raw.reference_proxies
    if now is None or then is None:
        return "no scores in the window"
    lines = ["| proxy | reference | served |", "|---|---|---|"]
    for name in ("positive_rate", "mean_score", "std_score", "mean_entropy"):
        lines.append(f"| {name} | {getattr(then, name):.4f} | {getattr(now, name):.4f} |")
    return "\n".join(lines)


@dg.asset(
    group_name="monitoring",
    kinds={"evidently"},
    check_specs=[dg.AssetCheckSpec(NO_DRIFT_CHECK, asset="drift_report",
                                   description="Served traffic has not drifted from the model's reference (warns).")],  # fmt: skip
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftReportConfig,
    dataset: DatasetResource,
    registry: RegistryResource,
    monitoring: MonitoringResource,
):
    """Newest served traffic vs the production model's reference: drift table, proxies, Evidently HTML."""
    ds = dataset.of(context)
    spec, monitoring = ds.spec, monitoring.in_scope(ds.scope)
    reg = registry.for_dataset(spec)
    version = reg.production_version()
    if version is None:
        raise dg.Failure("no production model yet: run the retrain job first")
    policy = monitoring.policy(config.false_alarm_rate, config.min_importance, config.min_rows)
    with monitoring.monitor(spec, reg) as monitor:
        window_rows = config.window_rows or monitoring.window_rows
        check = monitor.check(version, window_rows, policy)
        reference = monitor.reference(version) if check is not None else None
        evidence = monitor.evidence(check, version, window_rows, age=monitoring.max_model_age_days > 0)
    trigger, reasons = retrain_reasons(evidence, spec.auc_floor, monitoring.drift_retrains_alone, monitoring.max_model_age_days)
    realised = evidence.realised.auc if evidence.realised else None
    if check is None:
        summary = f"version {version} has served fewer than {policy.min_rows} predictions: nothing to compare yet"
        report = {"version": version, "level": OK, "trigger": trigger, "reasons": reasons, "summary": summary,
                  "realised_auc": realised}  # fmt: skip
        yield dg.Output(report, metadata={"summary": summary})
        yield dg.AssetCheckResult(check_name=NO_DRIFT_CHECK, passed=True, description=summary)
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    html = Path(monitoring.reports_dir) / "drift" / f"{stamp}-{spec.model_name}-v{version}.html"
    evidently = evidently_drift_report(reference, check.window, spec, html)
    monitoring.record(check.record("drift_report", spec, evidence))
    drift, assessment = check.drift, check.assessment
    raw = drift.raw  # Evidently's method on the same rows: its verdicts should match the HTML's
    agree = sum((c.column in evidently["drifted_columns"]) == c.drifted for c in raw.columns)
    report = {
        "version": version,
        "level": assessment.level,
        "trigger": trigger,  # performance, challenger or drift: what asks for a retrain; None: nothing
        "reasons": reasons,
        "summary": assessment.summary(),
        "rows": len(check.window),
        "drifted_importance": drift.drifted_importance,
        "drifted_columns": drift.drifted_columns,
        "evidently_drifted_columns": evidently["drifted_columns"],
        "html": str(html),
        "realised_auc": realised,
        "drift_share": len(drift.drifted_columns) / max(len(drift.columns), 1),
    }
    context.log.info(f"drift of version {version}: {assessment.summary()}")
    yield dg.Output(
        report,
        metadata={
            "level": assessment.level,
            "summary": assessment.summary(),
            "model_version": version,
            "rows": len(check.window),
            "drifted_importance": drift.drifted_importance,
            "drifted_columns": len(drift.drifted_columns),
            "evidently_drifted_columns": raw.n_drifted,
            "columns": dg.MetadataValue.md(drift.to_markdown()),
            "proxies": dg.MetadataValue.md(_proxies_table(check)),
            "evidently_report": dg.MetadataValue.path(str(html)),
            "evidently_agreement": f"{agree}/{len(raw.columns)} column verdicts agree",
            "skipped_columns": list(raw.skipped),
            "retrain_asked": trigger or "no",
            "findings": dg.MetadataValue.md("\n".join(f"- {r}" for r in reasons) or "nothing that asks for a retrain"),
            **performance_metadata(evidence),
        },
    )
    yield dg.AssetCheckResult(
        check_name=NO_DRIFT_CHECK,
        passed=assessment.level == OK,
        severity=dg.AssetCheckSeverity.WARN,
        description=assessment.summary(),
        metadata={"drifted_columns": drift.drifted_columns, "drifted_importance": drift.drifted_importance},
    )


@dg.asset(group_name="monitoring", kinds={"json"})
def retraining_decision(
    context: dg.AssetExecutionContext, drift_report: dict, dataset: DatasetResource, decisions: DecisionsResource
) -> dg.Output[dict]:
    """A retraining decision (JSON in the decisions inbox) from realised, live and expected performance and drift, with its reason."""
    ds = dataset.of(context)
    spec, decisions = ds.spec, decisions.in_scope(ds.scope)
    auc, asked = drift_report.get("realised_auc"), drift_report.get("trigger")
    reason = "; ".join(drift_report.get("reasons") or []) or drift_report["summary"]
    wish = RetrainingDecision(
        decision_date=clock.now(), retrain=asked is not None, reason=reason, performance_score=auc,
        trigger=asked or context.run.tags.get(TRIGGER_TAG, "drift"),
        model_version=drift_report["version"], dataset=spec.name, drift_share=drift_report.get("drift_share"),
        source=f"dagster run {context.run.run_id}",
    )  # fmt: skip
    decision = apply_policy(wish, recent_retrains(context.instance, ds.scoped(RETRAIN_JOB)), clock.now(), decisions.policy())
    path = DecisionFolder(Path(decisions.folder)).drop(decision)
    context.log.info(f"retrain={decision.retrain}: {decision.reason}")
    return dg.Output(
        {"decision_id": decision.decision_id, "retrain": decision.retrain, "reason": decision.reason, "file": str(path)},
        metadata={"retrain": decision.retrain, "reason": decision.reason, "trigger": decision.trigger,
                  "file": dg.MetadataValue.path(str(path)), "decision_id": decision.decision_id},
    )  # fmt: skip
