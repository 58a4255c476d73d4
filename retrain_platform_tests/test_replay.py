"""The closed loop end to end, through real components: a short replay of March 2013 through the
HTTP API with the Dagster daemon's sensors acting. drift → sensor → decision → retrain → promotion
→ serving answers with the new version. Then a replay of a dataset the platform never saw, given
by a YAML file alone.

The gates are relaxed for this test (no cooldown, no AUC or Brier improvement required) because
the loop's mechanics are under test here, not whether two days of data make a better model; the
gates themselves are tested in test_graph.py and test_core.py.
"""

import json
import socket

import numpy as np
import pandas as pd

from retrain_platform.cli import main
from retrain_platform.datasets import FLIGHTS
from retrain_platform.registry import ModelRegistry
from retrain_platform.replay.report import PLATFORM, decisions, monthly_table, plot, served_monthly_auc, summary
from retrain_platform.replay.runner import ReplayConfig, run_replay
from retrain_platform.store import PredictionStore
from retrain_platform.monitoring.log import MonitoringLog


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_short_replay_closes_the_loop(tmp_path):
    # Three ordinary days of March give the calibrated monitor no reason to retrain; a person's
    # decision each morning of the 2nd and 3rd closes the loop through the inbox instead.
    config = ReplayConfig(start="2013-03-01", end="2013-03-04", min_new_predictions=300, min_new_label_share=0,
                          gates=json.dumps({"cooldown_days": 0, "min_improvement": -1.0, "max_auc_degradation": 1.0,
                                            "max_brier_degradation": 1.0}),
                          manual_retrains=("2013-03-02", "2013-03-03"))  # fmt: skip
    lines = []
    settings = run_replay(tmp_path / "home", config, free_port(), progress=lines.append)
    assert lines[0].startswith("bootstrap: version 1") and len(lines) == 4  # bootstrap + one line a day

    log = MonitoringLog(settings.store_url)
    checks = log.history()
    log.close()
    assert len(checks) >= 3 and set(checks["source"]) == {"drift_sensor"}  # traffic was checked every day
    assert not checks["level"].isin(["flag", "alert"]).any()  # and raised no false alarm
    assert checks["evidently_drifted"].max() > 0  # where Evidently's fixed thresholds did

    made = decisions(settings)
    assert sum(d["retrain"] and d["trigger"] == "manual" for d in made) == 2
    registry = ModelRegistry(settings.tracking_uri, FLIGHTS.model_name)
    promotions = [h for h in registry.history() if h["action"] == "promote"]
    assert len(promotions) >= 2 and int(registry.production_version()) > 1
    promoted_late = registry.version_info(promotions[-1]["version"]).tags
    assert promoted_late["data_window"].endswith(("2013-03-01", "2013-03-02", "2013-03-03"))  # trained on served, labelled traffic

    store = PredictionStore(settings.store_url)
    last_day = store.latest_predictions(100)
    labelled = store.labelled_predictions(pd.Timestamp("2000-01-01", tz="UTC").to_pydatetime())
    store.close()
    # Serving moved on to a model the loop promoted (the very last promotion may come after the traffic).
    [served_by] = set(last_day["model_version"])
    assert served_by != "1" and served_by in {h["version"] for h in promotions}
    assert len(labelled) > 1_500  # labels came back after their delay
    assert not served_monthly_auc(settings).empty
    report = summary(settings, monthly_table(settings, "2013-03-01", "2013-03-04"), "2013-03-01")
    assert "promote v" in report and "holdout AUC" in report
    assert "| drift alarms | 0 (from" in report and "| promotions that lowered holdout AUC |" in report


DELIVERIES_YAML = """\
# Parcel deliveries of a made-up courier company: will the parcel arrive late?
name: deliveries
description: "synthetic parcel deliveries; target: delivered after the promised time."
data:
  path: deliveries.parquet
id:
  column: delivery_id
time: booked_at
target:
  column: late
  positive: 1
auc_floor: 0.6
recall_floor: 0.0
min_rows: 500
gates: {}
features:
  distance_km: {type: number, min: 0, max: 100}
  weight_kg: {type: number, min: 0, max: 100}
  hour: {type: integer, min: 0, max: 23, description: "hour booked"}
  courier: {type: category, categories: ["east", "north", "south", "west"]}
  rain_mm: {type: number, min: 0, max: 100, nullable: true, description: "missing when the gauge is down"}
"""


def deliveries(first_day: str, days: int, seed: int = 7) -> pd.DataFrame:
    """About 200 bookings a day between 6:00 and 22:00; long, rainy, late-evening trips run late
    more often, some couriers more than others, and February is wetter than January."""
    rng = np.random.default_rng(seed)
    frames = []
    for number, day in enumerate(pd.date_range(first_day, periods=days, freq="D")):
        n = int(rng.poisson(200))
        booked = day + pd.to_timedelta(np.sort(rng.uniform(6 * 3600, 22 * 3600, n)).round(), unit="s")
        wet = rng.random(n) < 0.25 + 0.15 * (number >= 31)
        rain = np.where(wet, rng.exponential(3.0, n), 0.0).round(1)
        frame = pd.DataFrame({
            "booked_at": booked,
            "distance_km": rng.gamma(2.0, 4.0, n).clip(0.2, 90).round(1),
            "weight_kg": rng.lognormal(1.0, 0.7, n).clip(0.1, 60).round(2),
            "hour": booked.hour.astype("int64"),
            "courier": rng.choice(["east", "north", "south", "west"], n, p=[0.3, 0.3, 0.25, 0.15]),
            "rain_mm": np.where(rng.random(n) < 0.03, np.nan, rain),
        })  # fmt: skip
        courier = frame["courier"].map({"east": 0.0, "north": 0.3, "south": -0.2, "west": 0.6})
        logit = (-2.2 + 0.07 * frame["distance_km"] + 0.25 * frame["rain_mm"].fillna(0) + courier
                 + 0.15 * (frame["hour"] - 17).clip(lower=0) + 0.02 * frame["weight_kg"])  # fmt: skip
        frame["late"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int64")
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    return rows.assign(delivery_id=np.arange(1, len(rows) + 1, dtype="int64"))


def test_replay_of_a_dataset_given_by_a_yaml_file(tmp_path, monkeypatch):
    folder = tmp_path / "datasets"
    folder.mkdir()
    (folder / "deliveries.yaml").write_text(DELIVERIES_YAML)
    deliveries("2021-01-01", 63).to_parquet(folder / "deliveries.parquet")  # to 2021-03-04
    monkeypatch.setenv("RETRAIN_DATASETS_DIR", str(folder))

    # Three days from the default start: 59 days after the first, on two months of history.
    config = ReplayConfig(dataset="deliveries", end="2021-03-04", min_new_predictions=150)
    lines = []
    settings = run_replay(tmp_path / "home", config, free_port(), progress=lines.append)
    assert lines[0] == "bootstrap: version 1 trained on the 59 days before 2021-03-01" and len(lines) == 4
    assert settings.dataset == "deliveries"

    table = monthly_table(settings, "2021-03-01", "2021-03-04")
    assert list(table.columns) == [PLATFORM, "static Jan-Feb", "oracle, 2 months", "oracle, all months"]
    assert list(table.index) == ["2021-03"] and table.notna().all().all()
    report = summary(settings, table, "2021-03-01")
    assert "| mean monthly AUC vs the better oracle |" in report and "| mean monthly AUC vs static |" in report
    assert "| 2021-03 |" in report
    assert plot(table, settings.home_dir / "replay_auc.png", settings.dataset).stat().st_size > 0


def test_a_dataset_without_an_event_time_cannot_be_replayed(tmp_path, capsys):
    assert main(["replay", "--home", str(tmp_path / "home"), "--dataset", "breast_cancer"]) == 2
    error = capsys.readouterr().err
    assert "'breast_cancer' has no event time" in error
