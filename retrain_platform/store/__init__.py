"""The prediction log and its labels (SQLAlchemy), shared by serving and monitoring; no Dagster here."""

from .prediction_store import DuplicateLabel, LabelRecord, PredictionStore, UnknownPrediction
from .schema import labels, metadata, predictions, utc_time_text
from .writer import WriterStats

__all__ = ["DuplicateLabel", "LabelRecord", "PredictionStore", "UnknownPrediction", "WriterStats",
           "labels", "metadata", "predictions", "utc_time_text"]  # fmt: skip
