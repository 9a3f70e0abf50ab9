"""Simulator configuration: which stations exist, time span, scales, sizes, faults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from rspy_batch.formats.cadu import CADU_LEN
from rspy_batch.simulator.faults import FaultSpec


@dataclass(frozen=True)
class StationDef:
    """A simulated station: its service type, satellite and daily entity rate."""

    id: str
    service: str  # cadip | auxip | prip | lta
    satellite: str
    rate_per_day: float  # sessions (cadip) or product slots per day at scale 1.0


DEFAULT_STATIONS: dict[str, StationDef] = {
    s.id: s
    for s in (
        StationDef("mti", "cadip", "S1A", 4),
        StationDef("nsg", "cadip", "S2B", 4),
        # adgs mixes two product types; its own rates live in the generator.
        StationDef("adgs", "auxip", "S1A", 6),
        # EOPF Zarr products are thinned from the slot plan (product_data.EOPF_EVERY).
        StationDef("s1a", "prip", "S1A", 12),
        StationDef("s2b", "prip", "S2B", 12),
        StationDef("s3a", "prip", "S3A", 12),
        StationDef("lta", "lta", "S1A", 6),
    )
}

REDIRECT_STATION = "nsg"  # the station whose downloads answer 307, as Neustrelitz does


@dataclass(frozen=True)
class SimConfig:
    """Everything one simulator run depends on; same config means same data."""

    seed: int = 42
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    stop: datetime = datetime(2026, 1, 8, tzinfo=UTC)
    scale: float = 1.0
    station_scale: dict[str, float] = field(default_factory=dict)  # overrides ``scale``
    faults: FaultSpec = field(default_factory=FaultSpec)
    redirect: str = "same"  # same | other
    host: str = "127.0.0.1"
    port: int = 0  # 0 picks a free port
    other_host: str = "127.0.0.2"  # listener for redirect mode "other"
    other_port: int = 0
    page_cap: int = 1000
    token_ttl: float = 1200.0
    refresh_ttl: float = 3600.0
    order_delay: float = 2.0
    cadu_chunk_bytes: int = 64 * 1024
    product_bytes: int = 16 * 1024
    # EOPF Zarr products: the S2 L1C 10 m side (a multiple of 6); S1 GRD and S3 OLCI sizes
    # follow in the proportions of the real products (10980 is a full S2 tile).
    eopf_size: int = 60
    eopf_scale: float = 1.0  # EOPF products' share of the slot plan (0: none)
    stations: tuple[str, ...] = tuple(DEFAULT_STATIONS)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.stop.tzinfo is None:
            raise ValueError("start and stop must be timezone-aware")
        if self.stop <= self.start:
            raise ValueError("stop must be after start")
        if self.redirect not in ("same", "other"):
            raise ValueError(f"redirect must be 'same' or 'other', not {self.redirect!r}")
        if self.cadu_chunk_bytes <= 0 or self.cadu_chunk_bytes % CADU_LEN:
            raise ValueError(f"cadu_chunk_bytes must be a positive multiple of {CADU_LEN}")
        if self.product_bytes <= 0:
            raise ValueError("product_bytes must be positive")
        if self.eopf_scale < 0:
            raise ValueError("eopf_scale must not be negative")
        if self.eopf_size < 12 or self.eopf_size % 6:
            raise ValueError(f"eopf_size must be a multiple of 6 and at least 12, "
                             f"not {self.eopf_size}")
        if self.page_cap <= 0:
            raise ValueError("page_cap must be positive")
        unknown = set(self.stations) | set(self.station_scale)
        unknown -= set(DEFAULT_STATIONS)
        if unknown:
            raise ValueError(f"unknown station(s): {', '.join(sorted(unknown))}")

    def scale_for(self, station_id: str) -> float:
        return self.station_scale.get(station_id, self.scale)

    @property
    def effective_token_ttl(self) -> float:
        return self.faults.token_ttl or self.token_ttl


def parse_scale(text: str) -> tuple[float, dict[str, float]]:
    """Parse ``0.5`` or ``s2b=300`` or ``0.5,s2b=300`` into (global, per-station)."""
    overall = 1.0
    per_station: dict[str, float] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        try:
            value = float(raw if sep else key)
        except ValueError:
            raise ValueError(f"scale {part!r}: not a number") from None
        if value < 0:
            raise ValueError(f"scale {part!r} must not be negative")
        if sep:
            if key.strip() not in DEFAULT_STATIONS:
                raise ValueError(f"scale {part!r}: unknown station {key.strip()!r}")
            per_station[key.strip()] = value
        else:
            overall = value
    return overall, per_station
