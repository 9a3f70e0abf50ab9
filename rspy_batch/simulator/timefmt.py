"""OData date-time text as the stations write it: ISO-8601, milliseconds, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(t: datetime) -> str:
    """``2020-01-05T07:22:04.051Z``."""
    t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def compact(t: datetime) -> str:
    """``20200105T072204`` as used in product names."""
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def parse_iso(text: str) -> datetime:
    """Parse an OData date-time literal or field value; naive values are taken as UTC."""
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)
