"""The replay's verdict: monthly AUC of the platform as served against a static model and two
monthly oracles, and the retrains and promotions the platform made, with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from retrain_platform.core.alarms import raised_alarms
from retrain_platform.core.monitoring import ALARM_LEVELS
from retrain_platform.core.training import TrainParams
from retrain_platform.datasets import get_spec
from retrain_platform.decisions.folder import DecisionFolder
from retrain_platform.registry import ModelRegistry
from retrain_platform.settings import Settings
from retrain_platform.datasets.sources import LOG_EPOCH
from retrain_platform.store import PredictionStore
from retrain_platform.monitoring.log import MonitoringLog

from .baselines import monthly_auc, oracle_scores, static_scores
from .history import replay_history

PLATFORM = "platform (served)"
STATIC = "static"  # the column's name goes on with the months the static model learned


def served_monthly_auc(settings: Settings) -> pd.Series:
    store = PredictionStore(settings.store_url)
    try:
        served = store.labelled_predictions(LOG_EPOCH)
    finally:
        store.close()
    months = pd.to_datetime(served[get_spec(settings.dataset).timestamp]).dt.to_period("M")
    return pd.Series({str(m): roc_auc_score(served.loc[months == m, "label"], served.loc[months == m, "score"])
                      for m in sorted(months.unique()) if served.loc[months == m, "label"].nunique() == 2})  # fmt: skip


def static_name(history: pd.DataFrame, timestamp: str, start: str) -> str:
    """The static column's name with the months that model learned from (all the history before
    `start`): "static Jan-Feb"."""
    months = history.loc[history[timestamp] < pd.Timestamp(start), timestamp].dt.to_period("M")
    first, last = months.min(), months.max()
    form = "%b" if first.year == last.year else "%b %Y"
    return f"{STATIC} {first.strftime(form)}" + (f"-{last.strftime(form)}" if last != first else "")


def monthly_table(settings: Settings, start: str, end: str) -> pd.DataFrame:
    spec = get_spec(settings.dataset)
    history = replay_history(spec)
    history = history[history[spec.timestamp] < pd.Timestamp(end)]
    params = TrainParams(learn_holdout=True)  # the baselines train as candidate_model does by default
    table = pd.DataFrame({
        PLATFORM: served_monthly_auc(settings),
        static_name(history, spec.timestamp, start): monthly_auc(history, spec, static_scores(history, spec, start, params)),
        "oracle, 2 months": monthly_auc(history, spec, oracle_scores(history, spec, start, 2, params)),
        "oracle, all months": monthly_auc(history, spec, oracle_scores(history, spec, start, None, params)),
    })  # fmt: skip
    return table.dropna(subset=[PLATFORM])


def decisions(settings: Settings) -> list[dict]:
    folder = DecisionFolder(settings.decisions_dir)
    return [json.loads(p.read_text()) for p in sorted(folder.archive.glob("*.json"))] if folder.archive.exists() else []


def drift_alarms(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every check, oldest first, and the alarms they raised (one per episode of drift)."""
    log = MonitoringLog(settings.store_url)
    try:
        checks = log.history(limit=1_000_000)
    finally:
        log.close()
    return checks, raised_alarms(checks, settings.drift_alarm_quiet_days)


def _holdout_aucs(tags: dict[str, str]) -> dict[str, float]:
    """A candidate's and the champion's AUC on the candidate's holdout, as the evaluation tagged them."""
    return {name: float(tags.get(name) or "nan") for name in ("holdout_auc", "champion_holdout_auc")}


def promotions(registry: ModelRegistry) -> list[dict]:
    """Every promotion after the first, with both models' AUC on the new model's holdout."""
    return [
        {**entry, **_holdout_aucs(registry.version_info(entry["version"]).tags)}
        for entry in registry.history()
        if entry["action"] == "promote" and entry.get("previous")
    ]


def rejections(registry: ModelRegistry) -> list[dict]:
    """Every candidate the gates rejected: its window, the gates it failed, both AUCs on its holdout."""
    out = []
    for version in map(str, range(1, int(registry.newest_version() or 0) + 1)):
        tags = registry.version_info(version).tags
        if tags.get("evaluation") == "rejected":
            out.append({"version": version, "data_window": tags.get("data_window", ""),
                        "failed_gates": tags.get("failed_gates", ""), "champion": tags.get("champion_at_evaluation", ""),
                        **_holdout_aucs(tags)})  # fmt: skip
    return out


def targets(table: pd.DataFrame, start: str, made: list[dict], promoted: list[dict], checks: pd.DataFrame,
            alarms: pd.DataFrame) -> list[str]:  # fmt: skip
    """The replay's targets, each with its measured value and verdict (`made`: the decisions,
    `promoted`: the promotions, `checks` and `alarms`: as `decisions`, `promotions` and
    `drift_alarms` give them)."""
    mean = table.mean()
    served = mean[PLATFORM]
    static = mean[next(column for column in table.columns if column.startswith(STATIC))]
    oracle = max(mean["oracle, 2 months"], mean["oracle, all months"])
    retrains = sum(d["retrain"] for d in made)
    oracle_retrains = len(table)  # each oracle retrains on the 1st of every replayed month
    lowered = [p for p in promoted if not p["holdout_auc"] >= p["champion_holdout_auc"]]  # NaN counts as lowered
    flagged = int(checks["level"].isin(ALARM_LEVELS).sum())

    def row(name, value, goal, ok):
        return f"| {name} | {value} | {goal} | {'met' if ok else '**missed**'} |"

    return [
        "## Targets", "", "| target | measured | goal | verdict |", "|---|---|---|---|",
        row("mean monthly AUC vs the better oracle", f"{served:.4f} vs {oracle:.4f}", ">= oracle - 0.01", served >= oracle - 0.01),
        row("mean monthly AUC vs static", f"{served:.4f} vs {static:.4f} ({served - static:+.4f})", ">= static + 0.03",
            served >= static + 0.03),
        row("retrains", f"{retrains} (oracles: {oracle_retrains} each)", "fewer than the oracles", retrains < oracle_retrains),
        row("promotions that lowered holdout AUC", f"{len(lowered)} of {len(promoted)}", "none", not lowered),
        row("drift alarms", f"{len(alarms)} (from {flagged} flagged checks of {len(checks)})", "at most one a month replayed",
            len(alarms) <= max(len(table), 1)),
        "",
    ]  # fmt: skip


def summary(settings: Settings, table: pd.DataFrame, start: str) -> str:
    registry = ModelRegistry(settings.tracking_uri, get_spec(settings.dataset).model_name)
    history = registry.history()
    made = decisions(settings)
    aucs = {p["version"]: p for p in promotions(registry)}
    checks, alarms = drift_alarms(settings)  # the whole log, read once
    lines = targets(table, start, made, list(aucs.values()), checks, alarms)
    lines += ["## Monthly AUC", "", "| month | " + " | ".join(table.columns) + " |", "|---|" + "---|" * len(table.columns)]
    lines += [f"| {month} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for month, row in table.iterrows()]
    lines += ["| **mean** | " + " | ".join(f"**{v:.3f}**" for v in table.mean()) + " |", ""]
    months = pd.to_datetime(alarms["event_time"]).dt.strftime("%Y-%m").value_counts().sort_index()
    lines += [f"## Drift alarms ({len(alarms)}; per month: "
              + (", ".join(f"{m} {n}" for m, n in months.items()) or "none") + ")", ""]
    lines += [f"- traffic of {pd.Timestamp(a['event_time']):%Y-%m-%d %H:%M} v{a['model_version']} {a['level']}: "
              f"{', '.join(a['drifted_columns'])} ({a['drifted_importance']:.0%} of the model's importance); "
              f"episode: {a['episode_checks']} flagged checks to {a['episode_last']:%Y-%m-%d}, "
              f"columns {', '.join(a['episode_columns'])}"
              for _, a in alarms.iterrows()]  # fmt: skip
    lines += ["", f"## Decisions ({sum(d['retrain'] for d in made)} retrains of {len(made)})", ""]
    lines += [f"- {d['decision_date'][:16]} {d['trigger']}: {'retrain' if d['retrain'] else 'no retrain'}: {d['reason'][:200]}" for d in made]
    lines += ["", f"## Registry ({sum(h['action'] == 'promote' for h in history)} promotions)", ""]
    lines += [f"- {h['at'][:16]} {h['action']} v{h['version']} (was v{h['previous']})"
              + (f": holdout AUC {aucs[h['version']]['holdout_auc']:.4f} vs {aucs[h['version']]['champion_holdout_auc']:.4f}"
                 if h["version"] in aucs and h["action"] == "promote" else "")
              for h in history]  # fmt: skip
    rejected = rejections(registry)
    lines += ["", f"## Rejected candidates ({len(rejected)})", ""]
    if rejected:
        lines += ["| version | data window | holdout AUC, candidate vs champion | failed gates |", "|---|---|---|---|"]
        lines += [f"| v{r['version']} | {r['data_window']} | {r['holdout_auc']:.4f} vs {r['champion_holdout_auc']:.4f} "
                  f"(v{r['champion']}) | {r['failed_gates']} |" for r in rejected]  # fmt: skip
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path, dataset: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    table.plot(ax=ax, marker="o")
    ax.set(ylabel="AUC", title=f"Replay of {dataset}, {table.index[0]} to {table.index[-1]}: monthly AUC")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
