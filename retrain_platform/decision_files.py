"""The decisions folder: inbox/ (the platform and people drop JSON files), archive/, rejected/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retrain_platform.core.decisions import DecisionError, RetrainingDecision
from retrain_platform.files import write_atomically


@dataclass(frozen=True)
class DecisionFolder:
    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    def drop(self, decision: RetrainingDecision) -> Path:
        stamp = decision.decision_date.strftime("%Y%m%dT%H%M%S")
        return write_atomically(self.inbox / f"{stamp}-{decision.trigger}-{decision.decision_id[:8]}.json", decision.to_json())

    def pending(self) -> list[Path]:
        """Inbox files, oldest first."""
        files = self.inbox.glob("*.json") if self.inbox.exists() else []
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name))

    def read(self, path: Path) -> RetrainingDecision:
        return RetrainingDecision.from_json(path.read_text())

    def archive_as(self, path: Path, decision: RetrainingDecision) -> Path:
        """Keep the decision as acted on (the policy may have changed retrain and reason)."""
        archived = write_atomically(self.archive / path.name, decision.to_json())
        path.unlink()
        return archived

    def reject(self, path: Path, error: DecisionError) -> Path:
        self.rejected.mkdir(parents=True, exist_ok=True)
        target = self.rejected / path.name
        path.replace(target)
        write_atomically(self.rejected / f"{path.name}.error.txt", f"{error}\n")
        return target
