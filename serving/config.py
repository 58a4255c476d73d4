"""Serving's own knobs, from RETRAIN_SERVING_* / RETRAIN_STORE_* environment variables.

Where things are (registry, store, Dagster) comes from `retrain_platform.settings.Settings`; this
is only how serving behaves. The admin token is read per request, never cached here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

ADMIN_TOKEN_ENV = "RETRAIN_ADMIN_TOKEN"
FEEDBACK_TOKEN_ENV = "RETRAIN_FEEDBACK_TOKEN"

_ENV_NAMES = {
    "poll_seconds": "RETRAIN_SERVING_POLL_SECONDS",
    "max_batch_rows": "RETRAIN_SERVING_MAX_BATCH_ROWS",
    "max_body_bytes": "RETRAIN_SERVING_MAX_BODY_BYTES",
    "store_batch_size": "RETRAIN_STORE_BATCH_SIZE",
    "store_flush_seconds": "RETRAIN_STORE_FLUSH_SECONDS",
    "dagster_location": "RETRAIN_DAGSTER_LOCATION",
    "dagster_repository": "RETRAIN_DAGSTER_REPOSITORY",
    "retrain_job": "RETRAIN_DAGSTER_RETRAIN_JOB",
}


@dataclass(frozen=True)
class ServingConfig:
    poll_seconds: float = 5.0
    max_batch_rows: int = 10_000
    # Refused before parsing: a body this big cannot be a valid batch of max_batch_rows rows.
    max_body_bytes: int = 32 * 1024 * 1024
    store_batch_size: int = 500
    store_flush_seconds: float = 1.0
    dagster_location: str = "retrain_platform"
    dagster_repository: str = "__repository__"
    retrain_job: str = "retrain"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingConfig:
        env = os.environ if env is None else env
        values = {}
        for field in fields(cls):
            name = _ENV_NAMES[field.name]
            if name in env:
                values[field.name] = type(field.default)(env[name])
        return cls(**values)
