"""The prediction log and its labels (SQLAlchemy), shared by serving and monitoring; no Dagster here."""

from .batch_writer import BatchWriter, WriterStats
from .log_chunks import encode_chunk
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
    "encode_chunk",
    "labelled_share",
    "labels",
    "metadata",
    "predictions",
]
