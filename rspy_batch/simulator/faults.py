"""Fault injection: the spec a run is started with, and the decisions it drives.

Transient faults (HTTP errors, slowness, truncation, broken JSON) are drawn per
request; data faults (bad checksum, missing field, evil name) are fixed per entity
so that tests can predict them from the ground truth.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields

from rspy_batch.simulator.detrand import unit

MAX_CONSECUTIVE_FAILURES = 2  # so a client retrying 3 times always gets through

TRANSIENT_KINDS = ("http-5xx", "http-429", "slow", "truncate", "malformed-json")
DATA_KINDS = ("bad-checksum", "missing-field", "evil-name")


@dataclass(frozen=True)
class FaultSpec:
    """Fault rates (probabilities in [0, 1]) plus two durations in seconds."""

    http_5xx: float = 0.0
    http_429: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    truncate: float = 0.0
    malformed_json: float = 0.0
    bad_checksum: float = 0.0
    missing_field: float = 0.0
    evil_name: float = 0.0
    token_ttl: float | None = None  # overrides the configured token lifetime

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        """Parse ``http-5xx=0.1,slow=0.05,token-ttl=5``; an unknown key is an error."""
        known = {f.name.replace("_", "-"): f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in (text or "").split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep:
                raise ValueError(f"fault {key!r} needs a value, e.g. {key}=0.1")
            if key not in known:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"fault {key}: {raw!r} is not a number") from None
            if key in ("slow-seconds", "token-ttl"):
                if value <= 0:
                    raise ValueError(f"fault {key} must be > 0 seconds")
            elif not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {key} is a probability, got {value}")
            values[known[key]] = value
        return cls(**values)

    def rate(self, kind: str) -> float:
        """Probability of a fault kind given by its spec name (``http-5xx``)."""
        return float(getattr(self, kind.replace("-", "_")) or 0.0)

    def to_text(self) -> str:
        """Inverse of :meth:`parse` (only non-default values)."""
        default = FaultSpec()
        parts = [
            f"{f.name.replace('_', '-')}={getattr(self, f.name):g}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return ",".join(parts)


def data_faults(spec: FaultSpec, seed: int, entity_key: str, kinds: tuple[str, ...]) -> list[str]:
    """Data faults an entity carries: persistent, fixed by seed and entity key."""
    return [k for k in kinds if unit(seed, "fault", k, entity_key) < spec.rate(k)]


class TransientFaults:
    """Per-request fault draws, reproducible for a given request sequence.

    The n-th request for one (method, path+query) always draws the same numbers,
    and the same request never fails more than twice in a row, so a retrying
    client sees a deterministic, finite sequence of failures.
    """

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self._spec = spec
        self._seed = seed
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._streak: dict[str, int] = {}

    def draw(self, key: str, applicable: tuple[str, ...]) -> str | None:
        """Return the fault kind to inject into this request, or None."""
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
            if self._streak.get(key, 0) >= MAX_CONSECUTIVE_FAILURES:
                self._streak[key] = 0
                return None
            chosen = None
            for kind in applicable:
                if unit(self._seed, "transient", key, attempt, kind) < self._spec.rate(kind):
                    chosen = kind
                    break
            # A slow answer is still a success: it must not count towards the streak.
            if chosen is None or chosen == "slow":
                self._streak[key] = 0
            else:
                self._streak[key] = self._streak.get(key, 0) + 1
            return chosen
