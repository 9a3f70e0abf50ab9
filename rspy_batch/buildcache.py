"""What the two things rspy-batch builds once and caches (the EOPF CPM venv, STAC Browser)
share: an exclusive lock across processes, and the readable end of a tool's output."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from rspy_batch.redact import redact


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if absent) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def output_tail(text: str, lines: int = 15) -> str:
    """The last non-blank ``lines`` of a tool's output, redacted, for an error message."""
    kept = [line for line in text.splitlines() if line.strip()]
    return redact("\n".join(kept[-lines:]))
