"""The prediction log and its labels (SQLAlchemy), shared by serving and monitoring; no Dagster here."""

from .batch_writer import BatchWriter, WriterStats
from .log_chunks import Chunk, prediction_row, request_rows
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
    "Chunk",
    "DuplicateLabel",
    "LabelRecord",
    "PredictionStore",
    "UnknownPrediction",
    "WriterStats",
    "labelled_share",
    "labels",
    "metadata",
    "prediction_row",
    "predictions",
    "request_rows",
]
