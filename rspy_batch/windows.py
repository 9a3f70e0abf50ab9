"""Time windows: how a date range is cut into Luigi tasks.

Windows are aligned to fixed multiples of their size counted from 1970-01-05 (a Monday),
then clipped to the requested range, so two runs over overlapping ranges share the
windows they have in common and find each other's completed work.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from rspy_batch.errors import ConfigError

EPOCH = datetime(1970, 1, 5, tzinfo=UTC)


def parse_when(text: str | datetime | date) -> datetime:
    """An ISO date or datetime as an aware UTC datetime (naive values are taken as UTC)."""
    if isinstance(text, datetime):
        dt = text
    elif isinstance(text, date):
        dt = datetime(text.year, text.month, text.day)
    else:
        try:
            dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"not an ISO date or datetime: {text!r}") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def split_windows(start: datetime, stop: datetime, days: float = 7
                  ) -> list[tuple[datetime, datetime]]:
    """Aligned windows of ``days`` covering ``[start, stop)``, clipped to it."""
    if stop <= start:
        raise ConfigError(f"empty time range: stop {stop.isoformat()} is not after "
                          f"start {start.isoformat()}")
    size = timedelta(days=days)
    if size <= timedelta(0):
        raise ConfigError("window size must be positive")
    first = EPOCH + size * ((start - EPOCH) // size)
    windows = []
    edge = first
    while edge < stop:
        windows.append((max(edge, start), min(edge + size, stop)))
        edge += size
    return windows
