"""The decisions folder and the policy of the retrains the platform launches by itself."""

from pathlib import Path

import dagster as dg

from retrain_platform.core.decisions import RetrainPolicy
from retrain_platform.core.gates import GateConfig
from retrain_platform.scopes import scoped_dir
from retrain_platform.training.jobs import reevaluate_run_config, retrain_run_config

from .folder import DecisionFolder


class DecisionsResource(dg.ConfigurableResource):
    folder: str
    cooldown_hours: float = 24.0  # at least this long between two retrains
    max_per_week: int = 3  # at most this many retrains in any 7 days
    retrain_window_days: int = 60  # data window of the retrains launched here (0: all history)
    retrain_gates: str = ""  # GateConfig as JSON for those retrains; empty: the defaults

    def in_scope(self, scope: str) -> "DecisionsResource":
        """This resource for another dataset than the default: its own decisions folder."""
        return self.model_copy(update={"folder": str(scoped_dir(self.folder, scope))}) if scope else self

    def inbox(self) -> DecisionFolder:
        return DecisionFolder(Path(self.folder))

    def policy(self) -> RetrainPolicy:
        return RetrainPolicy(cooldown_hours=self.cooldown_hours, max_per_week=self.max_per_week)

    def gates(self) -> GateConfig:
        return GateConfig.from_json(self.retrain_gates)

    def _set_gates(self) -> GateConfig | None:
        return self.gates() if self.retrain_gates else None

    def run_config(self) -> dict:
        """Run config of a retrain launched by a sensor or a schedule."""
        return retrain_run_config(self.retrain_window_days, self._set_gates())

    def reevaluate_run_config(self) -> dict:
        """Run config of a waiting challenger's re-evaluation, with the same gates."""
        return reevaluate_run_config(self._set_gates())
