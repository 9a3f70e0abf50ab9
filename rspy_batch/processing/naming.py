"""CPM product names (``eopf.product.conveniences.get_product_id``).

``{type}_{start}_{duration}_{platform}{rel_orbit}_{timeliness}{crc}.zarr``. CPM hashes the
product attributes for the CRC, which include creation times; we hash what identifies the
product instead (processor, version, input ids), so a re-run names its output the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

_TIMELINESS = {
    "NRT": "T", "NR": "T", "NRT-3h": "T", "FTD-6h": "T",
    "24H": "_", "STC": "_", "ST": "_", "Fast-24h": "_", "AL": "_",
    "NTC": "S", "NT": "S",
}


def crc(parts: Iterable[str]) -> str:
    """Three upper-case hex digits over ``parts`` (CPM's CRC width)."""
    return hashlib.md5("\n".join(parts).encode()).hexdigest()[:3].upper()


def product_name(
    product_type: str,
    start: datetime,
    stop: datetime,
    *,
    platform: str,
    relative_orbit: int | None,
    timeliness: str | None,
    identity: Iterable[str],
) -> str:
    """The CPM-style product id (without ``.zarr``)."""
    duration = min(9999, max(0, round((stop - start).total_seconds())))
    platform_letter = platform[-1:].upper() if platform else "_"
    orbit = f"{relative_orbit:03d}" if relative_orbit is not None else "___"
    letter = _TIMELINESS.get(timeliness or "", "_")
    return (f"{product_type}_{start:%Y%m%dT%H%M%S}_{duration:04d}_{platform_letter}{orbit}"
            f"_{letter}{crc(identity)}")
