"""The prediction log and its labels (SQLAlchemy), shared by serving and monitoring; no Dagster here."""

from .batch_writer import BatchWriter, WriterStats
from .prediction_store import (
    DuplicateLabel,
    LabelRecord,
    PredictionStore,
    UnknownPrediction,
    labelled_share,
)
from .schema import labels, metadata, predictions

__all__ = [
    "BatchWriter",
    "DuplicateLabel",
    "LabelRecord",
    "PredictionStore",
    "UnknownPrediction",
    "WriterStats",
    "labelled_share",
    "labels",
    "metadata",
    "predictions",
]
