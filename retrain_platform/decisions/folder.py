"""The decisions folder, shared by the platform and people (no Dagster here):

- `inbox/`: the `retraining_decision` asset, people and other systems drop `*.json` decisions here.
  Write a file elsewhere (or under a name starting with a dot) and rename it into the inbox, as
  `drop` does, so that it is never read half-written.
- `archive/`: every decision taken, as acted on (the policy may have changed `retrain` and
  `reason`), with an `outcome` object saying when, by whom and with which run key; the file keeps
  its inbox name with the outcome added (`<name>.retrain.json`, `.no-retrain`, `.duplicate`).
- `rejected/`: files that are not valid decisions, each beside `<name>.error.txt` saying what is
  wrong. Fix the file and drop it into the inbox again.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from retrain_platform.core.decisions import OUTCOME_FIELD, DecisionError, RetrainingDecision
from retrain_platform.core.files import write_atomically

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _free(folder: Path, stem: str, suffix: str) -> Path:
    """`folder/stem+suffix`, or with a counter when that name is taken: nothing is overwritten."""
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}.{n}{suffix}"
    return path


def oldest_first(folder: Path) -> list[Path]:
    """The decision files of a folder, oldest first (by modification time, then name); hidden
    files (being written) are skipped."""
    found = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            if not path.name.startswith(".") and path.is_file():
                found.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:  # taken away between the listing and the look
            continue
    return [path for *_, path in sorted(found)]


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

    def create(self) -> DecisionFolder:
        for folder in (self.inbox, self.archive, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def drop(self, decision: RetrainingDecision) -> Path:
        """Put a decision in the inbox atomically, under a name that sorts by date."""
        stamp = decision.decision_date.strftime("%Y%m%dT%H%M%S")
        name = _UNSAFE.sub("_", f"{stamp}-{decision.trigger}-{decision.decision_id[:8]}")
        return write_atomically(_free(self.inbox, name, ".json"), decision.to_json())

    def pending(self) -> list[Path]:
        """Inbox files, oldest first."""
        return oldest_first(self.inbox)

    @staticmethod
    def age_seconds(path: Path) -> float:
        return time.time() - path.stat().st_mtime

    @staticmethod
    def read(path: Path) -> RetrainingDecision:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise DecisionError(f"not UTF-8 text: {err}") from err
        return RetrainingDecision.from_json(text)

    def keep(self, decision: RetrainingDecision, name: str, outcome: dict | None = None) -> Path:
        """Archive a decision as acted on, with its outcome; `outcome["status"]` (retrain,
        no-retrain, duplicate) is added to the file's name, which starts as `name` did."""
        outcome = outcome or {}
        status = _UNSAFE.sub("_", str(outcome.get("status") or ("retrain" if decision.retrain else "no-retrain")))
        record = {**decision.to_dict(), OUTCOME_FIELD: {**outcome, "status": status, "file": name}}
        stem = _UNSAFE.sub("_", Path(name).stem)
        return write_atomically(_free(self.archive, f"{stem}.{status}", ".json"), json.dumps(record, indent=2))

    def archive_as(self, path: Path, decision: RetrainingDecision, outcome: dict | None = None) -> Path:
        """Keep the decision as acted on (the policy may have changed retrain and reason), with the
        outcome, then take the file out of the inbox."""
        archived = self.keep(decision, path.name, outcome)
        path.unlink(missing_ok=True)
        return archived

    def reject(self, path: Path, error: Exception) -> Path:
        """Move an invalid file to rejected/ and write what is wrong with it beside it."""
        self.rejected.mkdir(parents=True, exist_ok=True)
        target = _free(self.rejected, path.stem, path.suffix)
        path.replace(target)
        write_atomically(target.with_name(f"{target.name}.error.txt"), f"{target.name}: {error}\n")
        return target

    def taken(self) -> list[dict]:
        """The archived decisions, in the order they were taken."""
        return [json.loads(p.read_text()) for p in oldest_first(self.archive)]
