"""The closed loop end to end, through real components: a short replay of March 2013 through the
HTTP API with the Dagster daemon's sensors acting. drift → sensor → decision → retrain → promotion
→ serving answers with the new version.

The gates are relaxed for this test (no cooldown, no AUC improvement required) because the loop's
mechanics are under test here, not whether two days of data make a better model; the gates
themselves are tested in test_graph.py and test_core.py.
"""

import json
import socket

import pandas as pd

from retrain_platform.datasets import FLIGHTS
from retrain_platform.registry import ModelRegistry
from retrain_platform.replay.report import decisions, monthly_table, served_monthly_auc, summary
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
    config = ReplayConfig(start="2013-03-01", end="2013-03-04", sensor_seconds=2, min_new_predictions=300, min_new_label_share=0,
                          gates=json.dumps({"cooldown_days": 0, "min_improvement": -1.0, "max_auc_degradation": 1.0}),
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
    assert "| drift alarms | 0 of" in report and "| promotions that lowered holdout AUC |" in report
