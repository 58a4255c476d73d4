"""The MLflow model registry as the platform uses it: aliases, never the deprecated stages."""

from .mlflow_registry import (
    CHALLENGER,
    PRODUCTION,
    ModelRegistry,
    PromotionConflict,
    WAITING,
    VersionInfo,
    ensure_experiment,
)

__all__ = ["CHALLENGER", "PRODUCTION", "ModelRegistry", "PromotionConflict", "VersionInfo", "WAITING", "ensure_experiment"]
