"""Plausible synthetic footprints: an S1 IW slice or an S2 MGRS-like tile over land."""

from __future__ import annotations

import math
import random

_KM_PER_DEG = 111.32

# Land boxes (lon_min, lat_min, lon_max, lat_max) so footprints fall over continents.
LAND_BOXES: tuple[tuple[float, float, float, float], ...] = (
    (-5.0, 40.0, 25.0, 55.0),  # Europe
    (-10.0, 5.0, 35.0, 30.0),  # Northern Africa
    (15.0, -30.0, 35.0, -5.0),  # Southern Africa
    (-70.0, -30.0, -45.0, 0.0),  # South America
    (-120.0, 30.0, -80.0, 50.0),  # North America
    (70.0, 20.0, 120.0, 45.0),  # Asia
    (120.0, -35.0, 150.0, -20.0),  # Australia
)


def _offset(lon: float, lat: float, east_km: float, north_km: float) -> tuple[float, float]:
    dlat = north_km / _KM_PER_DEG
    dlon = east_km / (_KM_PER_DEG * max(math.cos(math.radians(lat)), 0.05))
    return round(lon + dlon, 4), round(lat + dlat, 4)


def land_point(rng: random.Random) -> tuple[float, float]:
    lon0, lat0, lon1, lat1 = rng.choice(LAND_BOXES)
    return rng.uniform(lon0, lon1), rng.uniform(lat0, lat1)


def s1_slice(rng: random.Random, descending: bool) -> list[tuple[float, float]]:
    """IW slice: ~250 km across track, ~170 km along a near-polar, tilted track."""
    return _along_track_box(rng, descending, half_l=85.0, half_w=125.0)


def olci_frame(rng: random.Random, descending: bool) -> list[tuple[float, float]]:
    """OLCI frame: a 3-minute, ~1200 km stretch of the ~1270 km wide swath."""
    return _along_track_box(rng, descending, half_l=595.0, half_w=635.0)


def _along_track_box(rng: random.Random, descending: bool, *, half_l: float, half_w: float
                     ) -> list[tuple[float, float]]:
    """A box around a land point, along a near-polar track. Corner order: (first line, edge A),
    (last line, edge A), (last line, edge B), (first line, edge B)."""
    lon, lat = land_point(rng)
    heading = math.radians(-167.0 if descending else -13.0)  # from north, clockwise
    along = (math.sin(heading), math.cos(heading))
    across = (along[1], -along[0])
    corners = []
    for sl, sw in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        east = sl * half_l * along[0] + sw * half_w * across[0]
        north = sl * half_l * along[1] + sw * half_w * across[1]
        corners.append(_offset(lon, lat, east, north))
    return [*corners, corners[0]]


def s2_tile(rng: random.Random) -> tuple[list[tuple[float, float]], str]:
    """A ~110 km square tile and an MGRS-looking tile id consistent with its position."""
    lon, lat = land_point(rng)
    ring = [
        _offset(lon, lat, 0, 0),
        _offset(lon, lat, 110, 0),
        _offset(lon, lat, 110, 110),
        _offset(lon, lat, 0, 110),
    ]
    zone = int((lon + 180) // 6) + 1
    bands = "CDEFGHJKLMNPQRSTUVWX"
    band = bands[min(max(int((lat + 80) // 8), 0), len(bands) - 1)]
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    tile = f"{zone:02d}{band}{rng.choice(letters)}{rng.choice(letters[:20])}"
    return [*ring, ring[0]], tile


def wkt_polygon(ring: list[tuple[float, float]]) -> str:
    return "POLYGON((" + ",".join(f"{x} {y}" for x, y in ring) + "))"


def footprint_text(ring: list[tuple[float, float]]) -> str:
    """The ``Footprint`` field, wrapper included, as PRIP serves it."""
    return f"geography'SRID=4326;{wkt_polygon(ring)}'"


def geojson_polygon(ring: list[tuple[float, float]]) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in ring]]}
