"""The replay's verdict: monthly AUC of the platform as served against a static model and two
monthly oracles, and the retrains and promotions the platform made, with their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from retrain_platform.core.training import TrainParams
from retrain_platform.datasets import FLIGHTS
from retrain_platform.decision_files import DecisionFolder
from retrain_platform.registry import ModelRegistry
from retrain_platform.settings import Settings
from retrain_platform.sources import LOG_EPOCH
from retrain_platform.store import PredictionStore

from .baselines import monthly_auc, oracle_scores, static_scores


def served_monthly_auc(settings: Settings) -> pd.Series:
    store = PredictionStore(settings.store_url)
    try:
        served = store.labelled_predictions(LOG_EPOCH)
    finally:
        store.close()
    months = pd.to_datetime(served[FLIGHTS.timestamp]).dt.to_period("M")
    return pd.Series({str(m): roc_auc_score(served.loc[months == m, "label"], served.loc[months == m, "score"])
                      for m in sorted(months.unique()) if served.loc[months == m, "label"].nunique() == 2})  # fmt: skip


def monthly_table(settings: Settings, start: str, end: str) -> pd.DataFrame:
    history = FLIGHTS.load()
    times = history[FLIGHTS.timestamp]
    history = history[times < pd.Timestamp(end)]
    params = TrainParams()
    table = pd.DataFrame({
        "platform (served)": served_monthly_auc(settings),
        "static Jan-Feb": monthly_auc(history, FLIGHTS, static_scores(history, FLIGHTS, start, params)),
        "oracle, 2 months": monthly_auc(history, FLIGHTS, oracle_scores(history, FLIGHTS, start, 2, params)),
        "oracle, all months": monthly_auc(history, FLIGHTS, oracle_scores(history, FLIGHTS, start, None, params)),
    })  # fmt: skip
    return table.dropna(subset=["platform (served)"])


def decisions(settings: Settings) -> list[dict]:
    folder = DecisionFolder(settings.decisions_dir)
    return [json.loads(p.read_text()) for p in sorted(folder.archive.glob("*.json"))] if folder.archive.exists() else []


def summary(settings: Settings, table: pd.DataFrame) -> str:
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    history = registry.history()
    made = decisions(settings)
    lines = ["## Monthly AUC", "", "| month | " + " | ".join(table.columns) + " |", "|---|" + "---|" * len(table.columns)]
    lines += [f"| {month} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for month, row in table.iterrows()]
    lines += ["| **mean** | " + " | ".join(f"**{v:.3f}**" for v in table.mean()) + " |", ""]
    lines += [f"## Decisions ({sum(d['retrain'] for d in made)} retrains of {len(made)})", ""]
    lines += [f"- {d['decision_date'][:16]} {d['trigger']}: {'retrain' if d['retrain'] else 'no retrain'}: {d['reason'][:200]}" for d in made]
    lines += ["", f"## Registry ({sum(h['action'] == 'promote' for h in history)} promotions)", ""]
    lines += [f"- {h['at'][:16]} {h['action']} v{h['version']} (was v{h['previous']})" for h in history]
    return "\n".join(lines)


def plot(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    table.plot(ax=ax, marker="o")
    ax.set(ylabel="AUC", title="Replay of 2013: monthly AUC")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
