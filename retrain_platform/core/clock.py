"""The platform's notion of "now": the wall clock, or a simulated one during a replay.

A replay plays a year in minutes; cooldowns, weekly limits and promotion times must follow the
replayed time or they would mean nothing. The replay writes its current time (ISO 8601) to the
file named by RETRAIN_CLOCK_FILE; every process of the platform reads it from there.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from retrain_platform.core.files import write_atomically

CLOCK_FILE_ENV = "RETRAIN_CLOCK_FILE"


def now() -> datetime:
    path = os.environ.get(CLOCK_FILE_ENV)
    if path:
        text = Path(path).read_text().strip()
        moment = datetime.fromisoformat(text)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def set_simulated(path: Path, moment: datetime) -> None:
    """Move the simulated clock."""
    write_atomically(path, moment.isoformat())
