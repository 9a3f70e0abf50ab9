"""Request, fault and leak counters exposed on ``/_sim/stats``."""

from __future__ import annotations

import threading
from typing import Any


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[str, dict[str, int]] = {}
        self.faults: dict[str, int] = {}
        self.auth_leaks = 0

    def count_request(self, station: str, status: int) -> None:
        with self._lock:
            per = self.requests.setdefault(station, {})
            per[str(status)] = per.get(str(status), 0) + 1

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] = self.faults.get(kind, 0) + 1

    def count_leak(self) -> None:
        with self._lock:
            self.auth_leaks += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {s: dict(c) for s, c in self.requests.items()},
                "faults": dict(self.faults),
                "auth_leaks": self.auth_leaks,
            }
