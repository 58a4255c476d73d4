"""Files other processes read while we write them: written whole or not at all."""

from __future__ import annotations

from pathlib import Path


def write_atomically(path: Path, content: str | bytes) -> Path:
    """Write to a hidden temporary file beside `path`, then rename: readers (sensors, other
    processes) see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.tmp"
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content)
    temporary.replace(path)
    return path
