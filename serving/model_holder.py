"""The model being served: `models:/<name>@production`, loaded natively, hot-swapped when the alias moves.

A swap builds the new `Served` completely, then replaces one reference; a request reads that
reference once, so it scores with one consistent model even while a swap happens. When the
registry cannot be reached the current model keeps serving and `health()` says why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from retrain_platform.core.predictor import Predictor
from retrain_platform.datasets import DatasetSpec
from retrain_platform.registry import CHALLENGER, PRODUCTION, ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCard:
    """What /model-info shows, read once at load time so it survives a registry outage."""

    version: str
    run_id: str | None
    tags: dict[str, str]
    metrics: dict[str, float]

    @classmethod
    def read(cls, registry: ModelRegistry, version: str) -> ModelCard:
        info = registry.version_info(version)
        try:
            metrics = registry.run_metrics(version)
        except Exception as err:  # a deleted run must not stop the model from serving
            log.warning("metrics of version %s unavailable: %s", version, err)
            metrics = {}
        return cls(info.version, info.run_id, info.tags, metrics)


@dataclass(frozen=True)
class Served:
    champion: Predictor
    card: ModelCard
    loaded_at: datetime
    # Scored off the request path when the challenger alias points elsewhere than production.
    challenger: Predictor | None = None
    challenger_card: ModelCard | None = None

    @property
    def version(self) -> str:
        return self.card.version

    @property
    def challenger_version(self) -> str | None:
        return self.challenger_card.version if self.challenger_card else None


@dataclass
class RegistryStatus:
    last_check_at: datetime | None = None
    last_success_at: datetime | None = None
    error: str | None = None


def _fail_fast_http() -> None:
    # MLflow retries a dead server for minutes by default; a poll should fail fast, since the
    # next poll is the retry. An operator's own setting wins.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


class ModelHolder:
    def __init__(
        self,
        spec: DatasetSpec,
        tracking_uri: str,
        poll_seconds: float = 5.0,
        registry_factory: Callable[[str, str], ModelRegistry] = ModelRegistry,
    ):
        self.spec = spec
        self.model_name = spec.model_name
        self.tracking_uri = tracking_uri
        self.poll_seconds = poll_seconds
        self._registry_factory = registry_factory
        self._registry: ModelRegistry | None = None
        self._served: Served | None = None
        self._unloadable_challenger: str | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = RegistryStatus()

    @property
    def served(self) -> Served | None:
        """The model to score with; read it once per request."""
        return self._served

    # -- polling --------------------------------------------------------------------------------
    def start(self) -> None:
        _fail_fast_http()
        self.refresh()  # first load before serving the first request, if the registry answers
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 2.0) -> None:
        """Stop polling. A poll still waiting for a registry that does not answer is left behind
        after `wait` seconds (a daemon thread with nothing to clean up): a shutdown must not wait
        out the registry's timeouts and retries before the log's last flush."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=wait)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def refresh(self) -> bool:
        """Look at the aliases; load and swap in what moved. Returns whether the model changed."""
        with self._refresh_lock:
            self.status.last_check_at = datetime.now(UTC)
            try:
                changed = self._refresh()
            except Exception as err:
                self.status.error = f"{type(err).__name__}: {err}"[:1000]
                log.warning("registry check failed, still serving version %s: %s", self._version(), self.status.error)
                return False
            self.status.last_success_at = self.status.last_check_at
            return changed

    def _refresh(self) -> bool:
        if self._registry is None:
            self._registry = self._registry_factory(self.tracking_uri, self.model_name)
        registry = self._registry
        production = registry.production_version()
        challenger = registry.alias_version(CHALLENGER)
        if challenger == production:
            challenger = None
        current = self._served
        if production is None:
            self.status.error = (
                f"registered model {self.model_name!r} has no version with alias {PRODUCTION!r}"
                + (f"; still serving version {current.version}" if current else "")
            )
            return False
        self.status.error = None
        if current and current.version == production:
            if challenger == current.challenger_version:
                return False
            if challenger is not None and challenger == self._unloadable_challenger:
                return False  # tried already; retry when an alias moves, not at every poll

        started = time.perf_counter()
        champion, card = self._load(registry, production, current)
        shadow, shadow_card = None, None
        self._unloadable_challenger = None
        if challenger is not None:
            try:
                shadow, shadow_card = self._load(registry, challenger, current)
            except Exception as err:  # shadow scoring is optional; the champion swap is not
                self._unloadable_challenger = challenger
                log.warning("challenger version %s not loaded, no shadow scoring: %s", challenger, err)
        same_champion = current is not None and current.version == production
        loaded_at = current.loaded_at if same_champion else datetime.now(UTC)
        self._served = Served(champion, card, loaded_at, shadow, shadow_card)
        log.info(
            "serving %s version %s (challenger %s), loaded in %.2f s",
            self.model_name, production, challenger, time.perf_counter() - started,
        )  # fmt: skip
        return not same_champion

    def _load(self, registry: ModelRegistry, version: str, current: Served | None) -> tuple[Predictor, ModelCard]:
        card = ModelCard.read(registry, version)
        # A version loaded before (champion <-> challenger, rollback) is reused, not downloaded again.
        if current is not None:
            for predictor, known in ((current.champion, current.card), (current.challenger, current.challenger_card)):
                if predictor is not None and known is not None and known.version == version:
                    return predictor, card
        predictor = registry.load_predictor(version)
        if predictor.spec.name != self.spec.name:
            raise ValueError(
                f"version {version} of {self.model_name!r} was trained on dataset {predictor.spec.name!r}, "
                f"but this server serves {self.spec.name!r}"
            )
        return predictor, card

    def _version(self) -> str | None:
        served = self._served
        return served.version if served else None

    # -- reporting ------------------------------------------------------------------------------
    def health(self) -> dict:
        served = self._served
        status = "unavailable" if served is None else ("degraded" if self.status.error else "ok")
        return {
            "status": status,
            "model_loaded": served is not None,
            "model_name": self.model_name,
            "model_version": served.version if served else None,
            "challenger_version": served.challenger_version if served else None,
            "loaded_at": served.loaded_at if served else None,
            "poll_seconds": self.poll_seconds,
            "last_registry_check_at": self.status.last_check_at,
            "last_registry_success_at": self.status.last_success_at,
            "registry_error": self.status.error,
        }
