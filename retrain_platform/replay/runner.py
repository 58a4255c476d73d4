"""Play the flights in time order through the HTTP API on a simulated clock, labels after a delay,
and let the daemon's sensors act: drift → decision → retrain → promotion → serving."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd

from retrain_platform.core import clock
from retrain_platform.core.decisions import RetrainingDecision
from retrain_platform.datasets import FLIGHTS
from retrain_platform.decisions.folder import DecisionFolder
from retrain_platform.definitions import build_definitions
from retrain_platform.registry import ModelRegistry
from retrain_platform.settings import PREFIX, Settings

from .platform import RunningPlatform, platform_env, settle

TOKEN = "replay-admin-token"


@dataclass(frozen=True)
class ReplayConfig:
    start: str = "2013-03-01"
    end: str = "2014-01-01"
    label_delay_hours: float = 24.0
    bootstrap_days: int = 59
    window_days: int = 0  # all the history: in the replay it beats a two-month window, as the oracles show
    cooldown_hours: float = 24.0  # between two retrains
    min_new_label_share: float = 0.25  # new labels, as a share of the production model's rows, a retrain waits for
    batch_rows: int = 500
    sensor_seconds: int = 5
    min_new_predictions: int = 500
    gates: str = ""  # JSON gate settings for the retrains the platform launches
    # Days (ISO dates) at whose start a person drops a forced retrain decision into the inbox.
    manual_retrains: tuple[str, ...] = ()
    settle_timeout: float = 900.0


def replay_settings(home: Path, config: ReplayConfig, serving_port: int) -> Settings:
    return Settings(
        home=home, dataset=FLIGHTS.name, history_until=config.start, train_on_prediction_log=True,
        drift_sensor_seconds=config.sensor_seconds, decision_sensor_seconds=config.sensor_seconds,
        drift_min_new_predictions=config.min_new_predictions, retrain_window_days=config.window_days,
        retrain_cooldown_hours=config.cooldown_hours, retrain_min_new_label_share=config.min_new_label_share,
        retrain_gates=config.gates, serving_url=f"http://127.0.0.1:{serving_port}",
    )  # fmt: skip


def _env(settings: Settings, clock_file: Path) -> dict[str, str]:
    values = settings.model_dump(exclude_defaults=True)
    env = {PREFIX + name.upper(): str(value).lower() if isinstance(value, bool) else str(value) for name, value in values.items()}
    return {**env, clock.CLOCK_FILE_ENV: str(clock_file), "RETRAIN_ADMIN_TOKEN": TOKEN, "RETRAIN_SERVING_POLL_SECONDS": "1"}


def _rows(frame: pd.DataFrame) -> list[dict]:
    columns = [FLIGHTS.id_column, FLIGHTS.timestamp, *FLIGHTS.feature_names]
    rows = frame[columns].astype(object).where(frame[columns].notna(), None).to_dict("records")
    for row in rows:
        row[FLIGHTS.timestamp] = row[FLIGHTS.timestamp].isoformat()
    return rows


def run_replay(home: Path, config: ReplayConfig, serving_port: int, progress: Callable[[str], None] = print) -> Settings:
    settings = replay_settings(home, config, serving_port)
    clock_file = settings.home_dir / "clock.txt"
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    start = pd.Timestamp(config.start)
    clock.set_simulated(clock_file, start.to_pydatetime())
    env = platform_env(_env(settings, clock_file), settings)
    os.environ.update(env)  # this process runs the bootstrap and reads the instance
    instance = dg.DagsterInstance.get()
    bootstrap = build_definitions(settings).resolve_job_def("retrain").execute_in_process(
        instance=instance,
        run_config={"ops": {"raw_data": {"config": {"window_days": config.bootstrap_days,
                                                    "window_end": (start - pd.Timedelta(days=1)).date().isoformat()}}}},
        tags={"retrain_platform/trigger": "manual"},
    )  # fmt: skip
    if not bootstrap.success:
        raise RuntimeError("the bootstrap retrain failed")
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    progress(f"bootstrap: version {registry.production_version()} trained on the {config.bootstrap_days} days before {config.start}")
    history = FLIGHTS.load()
    times = history[FLIGHTS.timestamp]
    traffic = history[(times >= start) & (times < pd.Timestamp(config.end))]
    platform = RunningPlatform(env, serving_port, settings.home_dir / "logs")
    platform.start()
    try:
        platform.wait_for_serving(registry.production_version())
        _play(traffic, config, clock_file, platform, instance, registry, progress, DecisionFolder(settings.decisions_dir))
    finally:
        platform.stop()
    return settings


def _play(traffic, config, clock_file, platform, instance, registry, progress, inbox: DecisionFolder) -> None:
    delay = pd.Timedelta(hours=config.label_delay_hours)
    waiting: deque[tuple[pd.Timestamp, str, int]] = deque()  # (label due, prediction id, label)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=platform.url, headers=headers, timeout=60) as client:

        def send_labels(until: pd.Timestamp) -> None:
            while waiting and waiting[0][0] <= until:
                _, prediction_id, label = waiting.popleft()
                client.post("/feedback", json={"prediction_id": prediction_id, "label": label}).raise_for_status()

        for day, flights in traffic.groupby(traffic[FLIGHTS.timestamp].dt.date):
            versions = set()
            if day.isoformat() in config.manual_retrains:
                clock.set_simulated(clock_file, flights[FLIGHTS.timestamp].iloc[0].to_pydatetime())
                inbox.drop(RetrainingDecision(decision_date=clock.now(), retrain=True, trigger="manual", force=True,
                                              reason="replay: a person asks for a retrain", source="replay"))  # fmt: skip
            for first in range(0, len(flights), config.batch_rows):
                batch = flights.iloc[first : first + config.batch_rows]
                now = batch[FLIGHTS.timestamp].iloc[-1]
                clock.set_simulated(clock_file, now.to_pydatetime())
                send_labels(now)
                answer = client.post("/predict/batch", json={"rows": _rows(batch)})
                answer.raise_for_status()
                body = answer.json()
                versions.add(body["model_version"])
                for (_, flight), predicted in zip(batch.iterrows(), body["predictions"], strict=True):
                    waiting.append((flight[FLIGHTS.timestamp] + delay, predicted["prediction_id"], int(flight[FLIGHTS.target])))
            settle(instance, platform, config.settle_timeout)
            production = registry.production_version()
            platform.wait_for_serving(production)
            progress(f"{day}: {len(flights):4d} flights served by v{','.join(sorted(versions))}; production now v{production}")
        send_labels(pd.Timestamp.max)
