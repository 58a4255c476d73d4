"""All settings in one typed object, read from RETRAIN_* environment variables.

Embedded defaults need no server: one home folder holds the Dagster instance, the MLflow store,
the prediction store, decisions and reports. Deployment overrides the URLs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from retrain_platform.core.gates import GateConfig
from retrain_platform.scopes import scoped_dir

PREFIX = "RETRAIN_"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    home: Path = Path("~/.retrain_platform")
    dataset: str = "flights"  # the default dataset: served at /predict, unprefixed in Dagster
    # The datasets that run side by side, comma-separated; empty: every dataset in the datasets folder.
    datasets: str = ""
    # A folder of dataset YAML files (docs/datasets.md); empty: the shipped ones. The datasets package
    # reads RETRAIN_DATASETS_DIR itself, since every process that asks for a spec shares the environment.
    datasets_dir: str = ""
    history_path: str = ""  # a Parquet file of labelled history; empty: the dataset's vendored data
    history_until: str = ""  # ISO date: history rows from this date on are not used (replays)
    train_on_prediction_log: bool = False  # add the labelled prediction log to the training rows
    drift_sensor_seconds: int = 60  # how often the drift sensor looks at served traffic
    drift_min_new_predictions: int = 500  # new predictions needed before the next drift check
    drift_window_rows: int = 5_000  # newest predictions of the production model that a check compares
    drift_report_repeat_hours: float = 24.0  # persistent drift of one model version is reported this often
    drift_false_alarm_rate: float = 0.05  # chance that a check of unchanged traffic flags any column
    drift_alarm_quiet_days: float = 7.0  # flagged checks closer than this are one episode: one alarm
    drift_min_importance: float = 0.10  # share of the model's importance drifted columns must carry to flag
    # Drift that matters asks for a retrain even while the expected AUC holds (off: it must come with
    # an expected loss; realised and live performance ask on their own either way).
    drift_retrains_alone: bool = False
    health_start_date: str = "2025-01-01"  # first day of the daily model health partitions
    health_sensor_seconds: int = 300  # how often a day's health is refreshed as its labels arrive
    decision_sensor_seconds: int = 30  # how often the decisions inbox is read
    retrain_cooldown_hours: float = 24.0  # at least this long between two retrains
    max_retrains_per_week: int = 3  # at most this many retrains in any 7 days
    # A drift or performance finding launches a retrain only once the labels logged since the
    # newest model (production, or a rejected candidate) was registered reach this share of the
    # rows it learned from (0: at once).
    retrain_min_new_label_share: float = 0.25
    # A model whose newest training data is older than this many days asks for a retrain by its age,
    # with or without a finding, new evidence or not (0: never; the policy and gates still apply).
    retrain_max_model_age_days: float = 0.0
    retrain_window_days: int = 60  # data window of retrains the platform launches by itself (0: all history)
    retrain_gates: str = ""  # GateConfig as JSON for those retrains, e.g. {"cooldown_days": 1}
    alert_webhook_url: str = ""  # failed runs are also POSTed here as JSON
    # Empty means "the embedded default under home"; set them to point at servers.
    mlflow_tracking_uri: str = ""
    mlflow_artifact_root: str = ""
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    prediction_store_url: str = ""
    dagster_url: str = "http://127.0.0.1:3000"
    serving_url: str = "http://127.0.0.1:8000"
    # Serving: how it behaves (the admin and feedback tokens are secrets, read per request instead).
    serving_workers: int = 2  # uvicorn worker processes of `retrain-platform dev`'s serving
    serving_poll_seconds: float = 5.0  # how often serving checks the registry's aliases
    serving_max_batch_rows: int = 10_000
    serving_max_body_bytes: int = 32 * 1024 * 1024  # refused unread: no valid batch is this big
    prediction_logging: bool = True  # off: predictions are answered but not written to the store
    store_batch_size: int = 500  # predictions per write to the prediction store
    store_flush_seconds: float = 1.0  # the longest a queued prediction waits for its write
    # When the local prediction log is synced to disk: none, batch or always (docs/serving.md: what a
    # power cut can lose with each). A SIGKILL loses nothing answered with any of them.
    log_sync: str = "batch"
    # Days of predictions (and their labels) the log keeps, whole UTC days; 0: all. PostgreSQL drops
    # a day's partitions whole, SQLite deletes in small batches (docs/serving.md).
    log_retention_days: int = 0
    # Where serving launches the retrain job through Dagster's GraphQL API.
    dagster_location: str = "retrain_platform"
    dagster_repository: str = "__repository__"
    dagster_retrain_job: str = "retrain"

    @field_validator("retrain_gates")
    @classmethod
    def _gates_are_valid(cls, text: str) -> str:
        GateConfig.from_json(text)  # a typo in a gate's name fails at start, not at the first retrain
        return text

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {name: env[PREFIX + name.upper()] for name in cls.model_fields if PREFIX + name.upper() in env}
        return cls(**values)

    def dataset_names(self) -> list[str]:
        """The datasets this deployment runs, the default first."""
        from retrain_platform.datasets import SPECS, get_spec

        named = [name.strip() for name in self.datasets.split(",") if name.strip()] or sorted(SPECS)
        for name in named:
            get_spec(name)  # an unknown name fails at start, naming the known ones
        return [self.dataset, *(name for name in named if name != self.dataset)]

    def scope(self, dataset: str) -> str:
        """Empty for the default dataset, else its name (see retrain_platform.scopes)."""
        return "" if dataset == self.dataset else dataset

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"

    @property
    def io_storage_dir(self) -> Path:
        return self.home_dir / "storage"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.home_dir / "mlflow" / "artifacts").as_uri()

    @property
    def store_url(self) -> str:
        return self.prediction_store_url or f"sqlite:///{self.home_dir / 'predictions.db'}"

    @property
    def decisions_dir(self) -> Path:
        return self.home_dir / "decisions"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def cache_dir(self) -> Path:
        return self.home_dir / "cache"

    @property
    def alerts_file(self) -> Path:
        return self.home_dir / "alerts.jsonl"

    def folders(self) -> list[Path]:
        """Every folder the platform reads or writes under its home, to be created at start: each
        dataset's decisions inbox among them, where people drop their decisions."""
        decisions = [scoped_dir(self.decisions_dir, self.scope(name)) for name in self.dataset_names()]
        return [self.dagster_home, self.io_storage_dir, self.reports_dir, self.cache_dir,
                self.home_dir / "mlflow" / "artifacts",
                *(folder / name for folder in decisions for name in ("inbox", "archive", "rejected"))]  # fmt: skip
