"""Approximate absolute/relative orbit numbers from time, good enough to look real."""

from __future__ import annotations

from datetime import UTC, datetime

# (reference epoch of orbit 1, period in minutes, orbits per repeat cycle)
_ORBITS: dict[str, tuple[datetime, float, int]] = {
    "S1A": (datetime(2014, 4, 3, 21, 0, tzinfo=UTC), 12 * 1440 / 175, 175),
    "S2B": (datetime(2017, 3, 7, 1, 49, tzinfo=UTC), 10 * 1440 / 143, 143),
    # 385 orbits in 27 days; the epoch puts late 2025 near cycle 132 as in real names
    "S3A": (datetime(2016, 3, 1, 10, 0, tzinfo=UTC), 27 * 1440 / 385, 385),
}


def absolute_orbit(satellite: str, t: datetime) -> int:
    epoch, period, _ = _ORBITS[satellite]
    return int((t - epoch).total_seconds() / 60 / period) + 1


def relative_orbit(satellite: str, t: datetime) -> int:
    _, _, cycle = _ORBITS[satellite]
    return (absolute_orbit(satellite, t) - 1) % cycle + 1


def cycle_number(satellite: str, t: datetime) -> int:
    _, _, cycle = _ORBITS[satellite]
    return (absolute_orbit(satellite, t) - 1) // cycle + 1


def seconds_since_orbit_start(satellite: str, t: datetime) -> float:
    """Time into the current orbit (a stand-in for time since the ascending node)."""
    epoch, period, _ = _ORBITS[satellite]
    return (t - epoch).total_seconds() % (period * 60)
