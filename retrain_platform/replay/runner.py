"""Play a dataset's rows in time order through the HTTP API on a simulated clock, labels after a
delay, and let the daemon's sensors act: drift → decision → retrain → promotion → serving."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd

from retrain_platform.core import clock
from retrain_platform.core.decisions import RetrainingDecision
from retrain_platform.datasets.spec import DatasetSpec
from retrain_platform.decisions.folder import DecisionFolder
from retrain_platform.definitions import build_definitions
from retrain_platform.registry import ModelRegistry
from retrain_platform.settings import PREFIX, Settings
from retrain_platform.store import PredictionStore

from .history import replay_history, replay_spec, save_window
from .platform import RunningPlatform, platform_env, settle, wait_until_logged

TOKEN = "replay-admin-token"
LABELS_PER_REQUEST = 1_000


@dataclass(frozen=True)
class ReplayConfig:
    dataset: str = "flights"
    start: str = ""  # empty: the first day `bootstrap_days` after the data's first day
    end: str = ""  # exclusive; empty: the day after the data's last day
    label_delay_hours: float = 24.0
    bootstrap_days: int = 59
    window_days: int = 0  # all the history: in the replay it beats a two-month window, as the oracles show
    cooldown_hours: float = 24.0  # between two retrains
    min_new_label_share: float = 0.25  # new labels, as a share of the production model's rows, a retrain waits for
    max_model_age_days: float = 0.0  # a model older than this asks for a retrain by its age (0: never)
    batch_rows: int = 500
    min_new_predictions: int = 500
    gates: str = ""  # JSON gate settings for the retrains the platform launches
    # Days (ISO dates) at whose start a person drops a forced retrain decision into the inbox.
    manual_retrains: tuple[str, ...] = ()
    settle_timeout: float = 900.0


def replay_settings(home: Path, config: ReplayConfig, serving_port: int) -> Settings:
    # The sensors tick when the replay asks (rounds.py); 1 s is the least interval Dagster keeps.
    return Settings(
        home=home, dataset=config.dataset, datasets=config.dataset,  # the replayed dataset alone
        history_until=config.start, train_on_prediction_log=True,
        drift_sensor_seconds=1, decision_sensor_seconds=1,
        drift_min_new_predictions=config.min_new_predictions, retrain_window_days=config.window_days,
        retrain_cooldown_hours=config.cooldown_hours, retrain_min_new_label_share=config.min_new_label_share,
        retrain_max_model_age_days=config.max_model_age_days,
        retrain_gates=config.gates, serving_url=f"http://127.0.0.1:{serving_port}",
        # A backtest has nothing to lose to a power cut, and a commit that waits for the disk is
        # most of what a label costs (about 4 ms of 5 on SQLite): a day's labels took seconds.
        log_sync="none",
        # Each day ends with a wait until serving stored all its predictions (platform.py): its
        # writer ships them every 0.1 s rather than every second.
        store_flush_seconds=0.1,
    )  # fmt: skip


def _env(settings: Settings, clock_file: Path) -> dict[str, str]:
    values = settings.model_dump(exclude_defaults=True)
    env = {PREFIX + name.upper(): str(value).lower() if isinstance(value, bool) else str(value) for name, value in values.items()}
    return {**env, clock.CLOCK_FILE_ENV: str(clock_file), "RETRAIN_ADMIN_TOKEN": TOKEN, "RETRAIN_SERVING_POLL_SECONDS": "1"}


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """The platform's environment in this process for the replay's length; the caller's after, so
    that a replay leaves no dataset, clock or home behind for what runs next in the process."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _rows(frame: pd.DataFrame, spec: DatasetSpec) -> list[dict]:
    columns = [spec.id_column, spec.timestamp, *spec.feature_names]
    rows = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict("records")
    for row in rows:
        row[spec.timestamp] = row[spec.timestamp].isoformat()
    return rows


def run_replay(home: Path, config: ReplayConfig, serving_port: int, progress: Callable[[str], None] = print) -> Settings:
    """Replays `config.dataset`; a dataset without an event time is a ReplayError naming it."""
    spec = replay_spec(config.dataset)
    history = replay_history(spec)
    window = save_window(home, spec, history, config.start, config.end, config.bootstrap_days)
    config = replace(config, start=window.start, end=window.end)
    settings = replay_settings(home, config, serving_port)
    clock_file = settings.home_dir / "clock.txt"
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp(config.start)
    clock.set_simulated(clock_file, start.to_pydatetime())
    env = platform_env(_env(settings, clock_file), settings)
    with _environment(env):  # this process runs the bootstrap and reads the instance
        instance = dg.DagsterInstance.get()
        bootstrap = build_definitions(settings).resolve_job_def("retrain").execute_in_process(
            instance=instance,
            run_config={"ops": {"raw_data": {"config": {"window_days": config.bootstrap_days,
                                                        "window_end": (start - pd.Timedelta(days=1)).date().isoformat()}}}},
            tags={"retrain_platform/trigger": "manual"},
        )  # fmt: skip
        if not bootstrap.success:
            raise RuntimeError("the bootstrap retrain failed")
        registry = ModelRegistry(settings.tracking_uri, spec.model_name)
        progress(f"bootstrap: version {registry.production_version()} trained on the {config.bootstrap_days} days before {config.start}")
        times = history[spec.timestamp]
        traffic = history[(times >= start) & (times < pd.Timestamp(config.end))]
        platform = RunningPlatform(env, serving_port, settings.home_dir)
        store = PredictionStore(settings.store_url)  # read only: how many predictions serving stored
        platform.start()
        try:
            platform.wait_for_serving(registry.production_version())
            _play(traffic, spec, config, clock_file, platform, instance, registry, store, progress,
                  DecisionFolder(settings.decisions_dir))  # fmt: skip
        finally:
            platform.stop()
            store.close()
    return settings


def _play(traffic, spec: DatasetSpec, config, clock_file, platform, instance, registry, store, progress,
          inbox: DecisionFolder) -> None:  # fmt: skip
    delay = pd.Timedelta(hours=config.label_delay_hours)
    served = 0
    waiting: deque[tuple[pd.Timestamp, str, int]] = deque()  # (label due, prediction id, label)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=platform.url, headers=headers, timeout=60) as client:

        def send_labels(until: pd.Timestamp) -> None:
            # In order, in batches that are stored in order: the monitor's newest labelled rows break
            # ties of equal prediction times by the order labels were stored.
            due = []
            while waiting and waiting[0][0] <= until:
                _, prediction_id, label = waiting.popleft()
                due.append({"prediction_id": prediction_id, "label": label})
            for first in range(0, len(due), LABELS_PER_REQUEST):
                labels = due[first : first + LABELS_PER_REQUEST]
                answer = client.post("/feedback/batch", json={"labels": labels})
                answer.raise_for_status()
                if answer.json()["labelled"] != len(labels):
                    raise RuntimeError(f"serving stored {answer.json()['labelled']} of {len(labels)} labels: {answer.text[:500]}")

        for day, rows in traffic.groupby(traffic[spec.timestamp].dt.date):
            versions = set()
            if day.isoformat() in config.manual_retrains:
                clock.set_simulated(clock_file, rows[spec.timestamp].iloc[0].to_pydatetime())
                inbox.drop(RetrainingDecision(decision_date=clock.now(), retrain=True, trigger="manual", force=True,
                                              reason="replay: a person asks for a retrain", source="replay"))  # fmt: skip
                settle(instance, platform, config.settle_timeout)  # the platform acts on it before the day's traffic
                # Serving swaps at its next poll: the day's traffic must meet the model it promoted.
                platform.wait_for_serving(registry.production_version())
            for first in range(0, len(rows), config.batch_rows):
                batch = rows.iloc[first : first + config.batch_rows]
                now = batch[spec.timestamp].iloc[-1]
                clock.set_simulated(clock_file, now.to_pydatetime())
                send_labels(now)
                answer = client.post("/predict/batch", json={"rows": _rows(batch, spec)})
                answer.raise_for_status()
                body = answer.json()
                versions.add(body["model_version"])
                due = batch[spec.timestamp] + delay
                ids = [predicted["prediction_id"] for predicted in body["predictions"]]
                waiting.extend(zip(due, ids, batch[spec.target].astype(int).tolist(), strict=True))
                served += len(ids)
            wait_until_logged(store, served, platform, config.settle_timeout)
            settle(instance, platform, config.settle_timeout)
            production = registry.production_version()
            platform.wait_for_serving(production)
            progress(f"{day}: {len(rows):4d} rows served by v{','.join(sorted(versions))}; production now v{production}")
        send_labels(pd.Timestamp.max)
