"""Approximate absolute/relative orbit numbers from time, good enough to look real."""

from __future__ import annotations

from datetime import UTC, datetime

# (reference epoch of orbit 1, period in minutes, orbits per repeat cycle)
_ORBITS: dict[str, tuple[datetime, float, int]] = {
    "S1A": (datetime(2014, 4, 3, 21, 0, tzinfo=UTC), 12 * 1440 / 175, 175),
    "S2B": (datetime(2017, 3, 7, 1, 49, tzinfo=UTC), 10 * 1440 / 143, 143),
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
