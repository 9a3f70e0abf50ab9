"""Synthetic Sentinel-2 L1C products (``S02MSIL1C``) with real pixels.

Layout and attributes follow ``eopf-products.md`` §1.2–1.4 (CPM 2.8.1 PSD15 mapping and the
2025 Sample Service products). Pixel values:

- **10 m bands (b02, b03, b04, b08)** are a real Sentinel-2 patch: ``spyndex``'s
  ``data/S2_10m.json`` (4 × 300 × 300 surface reflectance × 10000), read as
  ``json[band][row][col]`` and tiled with mirroring (odd tiles flipped, so there are no
  seams); the top-left 300 × 300 tile is the patch itself. The patch values are used as
  TOA reflectance (no atmosphere is simulated), so ``DN = value + 1000`` at baseline ≥ 04.00.
- **20 m and 60 m bands** are derived from the block-averaged 10 m bands with simple
  spectral shapes (red edge between red and NIR, SWIR from NIR and red, ...) and ±1 %
  noise hashed from ``(seed, band, row, col)``, so values do not depend on chunking.
- **Features** (``spec.extra["features"]``, default on), placed from ``spec.seed``: opaque
  clouds, cirrus, snow and water ellipses with soft edges, blended into every band, and a
  no-data triangle in the bottom-left corner, on whole 60 m cells so that every resolution
  agrees. Clouds, cirrus and snow are flagged in ``conditions/mask/l1c_classification``
  (cell alpha > 0.5); no-data in ``quality/mask`` (bit 32).

Arrays are Dask-backed and computed block by block, so the full tile (10980²) can be
written without holding it in memory.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize

from rspy_batch.processing.product import scaled
from rspy_batch.processing.samples import SampleSpec

BANDS_10M = ("b02", "b03", "b04", "b08")
BANDS_20M = ("b05", "b06", "b07", "b8a", "b11", "b12")
BANDS_60M = ("b01", "b09", "b10")
RESOLUTIONS: dict[int, tuple[str, ...]] = {10: BANDS_10M, 20: BANDS_20M, 60: BANDS_60M}
ALL_BANDS = ("b01", "b02", "b03", "b04", "b05", "b06", "b07", "b08", "b8a", "b09", "b10",
             "b11", "b12")

SCALE_FACTOR = 1e-4
#: ``add_offset`` of baseline >= 04.00 (RADIO_ADD_OFFSET -1000 / QUANTIFICATION 10000)
OFFSET_PB04 = -0.1
PATCH_SIDE = 300
#: CPM chunking of a full tile per resolution (10 m; 20 m and 60 m are /2 and /6)
FULL_CHUNK_10M = 1830
SUN_GRID_STEP = 5000

#: band -> (eo:common_name, centre µm, FWHM µm, resolution m)
BAND_INFO: dict[str, tuple[str, float, float, int]] = {
    "b01": ("coastal", 0.4427, 0.021, 60),
    "b02": ("blue", 0.4924, 0.066, 10),
    "b03": ("green", 0.5598, 0.036, 10),
    "b04": ("red", 0.6646, 0.031, 10),
    "b05": ("rededge071", 0.7041, 0.015, 20),
    "b06": ("rededge075", 0.7405, 0.015, 20),
    "b07": ("rededge078", 0.7828, 0.020, 20),
    "b08": ("nir", 0.8328, 0.106, 10),
    "b8a": ("nir08", 0.8647, 0.021, 20),
    "b09": ("nir09", 0.9451, 0.020, 60),
    "b10": ("cirrus", 1.3735, 0.031, 60),
    "b11": ("swir16", 1.6137, 0.091, 20),
    "b12": ("swir22", 2.2024, 0.175, 20),
}

#: ``eo:solar_illumination`` (W m-2 µm-1) from L1C metadata; S2B also stands in for S2C/S2D
SOLAR_ILLUMINATION: dict[str, dict[str, float]] = {
    "sentinel-2a": {"b01": 1884.69, "b02": 1959.66, "b03": 1823.24, "b04": 1512.06,
                    "b05": 1424.64, "b06": 1287.61, "b07": 1162.08, "b08": 1041.63,
                    "b8a": 955.32, "b09": 812.92, "b10": 367.15, "b11": 245.59, "b12": 85.25},
    "sentinel-2b": {"b01": 1874.3, "b02": 1959.75, "b03": 1824.93, "b04": 1512.79,
                    "b05": 1425.78, "b06": 1291.13, "b07": 1175.57, "b08": 1041.28,
                    "b8a": 953.93, "b09": 817.58, "b10": 365.41, "b11": 247.08, "b12": 87.75},
}

INTERNATIONAL_DESIGNATOR = {"sentinel-2a": "2015-028A", "sentinel-2b": "2017-013A",
                            "sentinel-2c": "2024-157A"}

# Feature spectra (TOA reflectance per band). Clouds are bright and flat with bright SWIR,
# snow is bright in the visible and dark in SWIR, water is dark beyond green.
_CLOUD = dict(zip(ALL_BANDS, (0.48, 0.47, 0.46, 0.45, 0.45, 0.45, 0.45, 0.44, 0.44, 0.30,
                              0.030, 0.30, 0.20), strict=True))
_SNOW = dict(zip(ALL_BANDS, (0.85, 0.85, 0.83, 0.80, 0.78, 0.75, 0.72, 0.70, 0.68, 0.50,
                             0.005, 0.08, 0.05), strict=True))
_WATER = dict(zip(ALL_BANDS, (0.09, 0.07, 0.06, 0.035, 0.03, 0.02, 0.018, 0.015, 0.012,
                              0.005, 0.001, 0.008, 0.005), strict=True))
#: cirrus is thin: it adds to what is below, most visibly in b10 (1375 nm)
_CIRRUS_ADD = dict(zip(ALL_BANDS, (0.04, 0.04, 0.04, 0.04, 0.035, 0.035, 0.035, 0.03, 0.03,
                                   0.02, 0.025, 0.02, 0.015), strict=True))
_FEATURE_COUNTS = {"water": 2, "snow": 1, "cloud": 4, "cirrus": 2}
_FLAG_BITS = {"cloud": 1, "cirrus": 2, "snow": 4}  # OPAQUE, CIRRUS, SNOW_ICE
NODATA_BIT = 32


@dataclass(frozen=True)
class Feature:
    """A soft-edged ellipse in 10 m pixel units (continuous: pixel i spans [i, i+1))."""

    kind: str
    cy: float
    cx: float
    ry: float
    rx: float

    def alpha(self, yc: np.ndarray, xc: np.ndarray) -> np.ndarray:
        """Coverage at pixel centres ``yc`` (rows) × ``xc`` (cols): 1 inside 70 % of the radius,
        fading to 0 at the edge."""
        d = np.sqrt(((yc[:, None] - self.cy) / self.ry) ** 2
                    + ((xc[None, :] - self.cx) / self.rx) ** 2)
        return np.clip((1.0 - d) / 0.3, 0.0, 1.0)

    def touches(self, y0: float, y1: float, x0: float, x1: float) -> bool:
        return (self.cy + self.ry > y0 and self.cy - self.ry < y1
                and self.cx + self.rx > x0 and self.cx - self.rx < x1)


@dataclass(frozen=True)
class _Scene:
    """Everything a block needs to compute its pixels."""

    size: int
    seed: int
    offset: float
    features: tuple[Feature, ...]
    with_nodata: bool

    def nodata(self, factor: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """No-data pixels of a ``factor``-coarse block: a bottom-left triangle of 60 m cells
        (like a swath edge), computed from the formula so nothing big enters a Dask graph."""
        rows = (np.arange(r0, r1) * factor) // 6
        cols = (np.arange(c0, c1) * factor) // 6
        if not self.with_nodata:
            return np.zeros((rows.size, cols.size), dtype=bool)
        n60 = self.size // 6
        legs = max(1, n60 // 5)
        return (n60 - 1 - rows)[:, None] + cols[None, :] < legs


# --- the real patch ------------------------------------------------------------------------


def spyndex_patch_path() -> Path:
    """``spyndex/data/S2_10m.json``, located without importing spyndex (its deps are absent)."""
    spec = importlib.util.find_spec("spyndex")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the spyndex package (installed with --no-deps) is required for "
                           "S2 sample pixels")
    return Path(spec.submodule_search_locations[0]) / "data" / "S2_10m.json"


@functools.lru_cache(maxsize=1)
def spyndex_patch() -> np.ndarray:
    """The real patch as ``uint16 (band=4: b02,b03,b04,b08; row=300; col=300)``."""
    with open(spyndex_patch_path()) as fh:
        data = np.asarray(json.load(fh), dtype=np.uint16)
    if data.shape != (4, PATCH_SIDE, PATCH_SIDE):
        raise RuntimeError(f"unexpected spyndex S2_10m.json shape {data.shape}")
    return data


def mirror_index(index: np.ndarray, n: int = PATCH_SIDE) -> np.ndarray:
    """Patch row/col of global 10 m index: tiles repeat, odd tiles are flipped."""
    tile, within = np.divmod(index, n)
    return np.where(tile % 2 == 1, n - 1 - within, within)


def _patch_window(band: str, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """Patch reflectance of a 10 m ``band`` for 10 m rows [r0, r1) and cols [c0, c1)."""
    rows = mirror_index(np.arange(r0, r1))
    cols = mirror_index(np.arange(c0, c1))
    plane = spyndex_patch()[BANDS_10M.index(band)]
    return np.take(np.take(plane, rows, axis=0), cols, axis=1) / 10000.0


# --- pixel synthesis (pure numpy) ---------------------------------------------------------


def hash_uniform(rows: np.ndarray, cols: np.ndarray, key: int) -> np.ndarray:
    """Uniform [0, 1) per (row, col), a splitmix64 hash: independent of chunking."""
    with np.errstate(over="ignore"):
        h = (rows.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)) ^ \
            (cols.astype(np.uint64)[None, :] * np.uint64(0xC2B2AE3D27D4EB4F)) ^ np.uint64(key)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


#: the 10 m bands each derived band is made of
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "b01": ("b02",), "b05": ("b04", "b08"), "b06": ("b04", "b08"), "b07": ("b04", "b08"),
    "b8a": ("b08",), "b09": ("b08",), "b10": ("b02",), "b11": ("b04", "b08"),
    "b12": ("b04", "b08"),
}


def derive_band(band: str, base: Mapping[str, np.ndarray]) -> np.ndarray:
    """A plausible reflectance of ``band`` from 10 m bands (b02 b03 b04 b08) on its grid."""
    if band in BANDS_10M:
        return base[band]
    blue, red, nir = base.get("b02"), base.get("b04"), base.get("b08")
    formulas = {
        "b01": lambda: 1.12 * blue + 0.015,            # coastal: blue plus more scattering
        "b05": lambda: red + 0.30 * (nir - red),       # red edge rises from red to NIR
        "b06": lambda: red + 0.70 * (nir - red),
        "b07": lambda: red + 0.90 * (nir - red),
        "b8a": lambda: 1.02 * nir,
        "b09": lambda: 0.32 * nir,                     # water-vapour absorption
        "b10": lambda: 0.0015 + 0.004 * blue,          # 1375 nm: near zero in clear sky
        "b11": lambda: 0.55 * nir + 0.45 * red + 0.02,
        "b12": lambda: 0.55 * (0.55 * nir + 0.45 * red + 0.02) + 0.25 * red,
    }
    return formulas[band]()


def apply_features(band: str, rho: np.ndarray, yc: np.ndarray, xc: np.ndarray,
                   features: tuple[Feature, ...]) -> np.ndarray:
    """``rho`` with the scene's features blended in (water, snow, clouds, then cirrus)."""
    y0, y1, x0, x1 = yc[0], yc[-1], xc[0], xc[-1]
    for kind in ("water", "snow", "cloud", "cirrus"):
        for feature in features:
            if feature.kind != kind or not feature.touches(y0, y1, x0, x1):
                continue
            alpha = feature.alpha(yc, xc)
            if kind == "cirrus":
                rho = rho + alpha * _CIRRUS_ADD[band]
            else:
                target = {"water": _WATER, "snow": _SNOW, "cloud": _CLOUD}[kind][band]
                rho = rho * (1.0 - alpha) + alpha * target
    return rho


def _centres(start: int, stop: int, factor: int) -> np.ndarray:
    """Pixel centres of a ``factor``-coarse grid in 10 m pixel units."""
    return (np.arange(start, stop) + 0.5) * factor


def reflectance_block(scene: _Scene, band: str, factor: int, r0: int, r1: int, c0: int,
                      c1: int) -> np.ndarray:
    """TOA reflectance (NaN = no data) of ``band`` for coarse rows [r0, r1), cols [c0, c1)."""
    h, w = r1 - r0, c1 - c0
    base = {}
    for name in DERIVED_FROM.get(band, (band,)):
        plane = _patch_window(name, r0 * factor, r1 * factor, c0 * factor, c1 * factor)
        base[name] = plane.reshape(h, factor, w, factor).mean(axis=(1, 3)) if factor > 1 \
            else plane
    rho = derive_band(band, base)
    if band not in BANDS_10M:
        key = zlib.crc32(f"{scene.seed}:{band}".encode())
        rho = rho * (1.0 + 0.02 * (hash_uniform(np.arange(r0, r1), np.arange(c0, c1), key)
                                   - 0.5))
    rho = apply_features(band, rho, _centres(r0, r1, factor), _centres(c0, c1, factor),
                         scene.features)
    lo = SCALE_FACTOR + scene.offset
    rho = np.clip(rho, lo, 65535 * SCALE_FACTOR + scene.offset)
    rho[scene.nodata(factor, r0, r1, c0, c1)] = np.nan
    return rho


def make_features(size: int, seed: int) -> tuple[Feature, ...]:
    """Seeded ellipses, their radii 6–14 % of the tile side."""
    rng = np.random.default_rng([seed, 2])
    features = []
    for kind, count in _FEATURE_COUNTS.items():
        for _ in range(count):
            cy, cx = rng.uniform(0, size, 2)
            ry, rx = rng.uniform(0.06, 0.14, 2) * size
            features.append(Feature(kind, float(cy), float(cx), float(ry), float(rx)))
    return tuple(features)


def classification_block(scene: _Scene, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """``l1c_classification`` b00 (60 m): OPAQUE 1 / CIRRUS 2 / SNOW_ICE 4 where alpha > 0.5."""
    yc, xc = _centres(r0, r1, 6), _centres(c0, c1, 6)
    flags = np.zeros((r1 - r0, c1 - c0), dtype=np.uint8)
    for feature in scene.features:
        if feature.kind in _FLAG_BITS and feature.touches(yc[0], yc[-1], xc[0], xc[-1]):
            flags[feature.alpha(yc, xc) > 0.5] |= np.uint8(_FLAG_BITS[feature.kind])
    flags[scene.nodata(6, r0, r1, c0, c1)] = 0
    return flags


def quality_block(scene: _Scene, factor: int, r0: int, r1: int, c0: int, c1: int
                  ) -> np.ndarray:
    """``quality/mask`` bits of a block: NODATA (32) where there is no data."""
    return scene.nodata(factor, r0, r1, c0, c1).astype(np.uint8) * np.uint8(NODATA_BIT)


# --- geometry and metadata ----------------------------------------------------------------


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _iso(when: datetime) -> str:
    return _utc(when).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ring(footprint: Mapping[str, Any]) -> list[list[float]]:
    coords = footprint.get("coordinates") or []
    if footprint.get("type") == "MultiPolygon":
        return [pt for poly in coords for pt in poly[0]]
    return list(coords[0]) if coords else []


def grid_origin(spec: SampleSpec) -> tuple[int, int, int]:
    """(EPSG, ULX, ULY): from ``extra`` if given, else the footprint's UTM zone and upper-left
    corner snapped to 60 m, else tile 32TLQ's."""
    from rasterio.warp import transform

    extra = spec.extra
    ring = _ring(spec.footprint)
    if "epsg" in extra and "ulx" in extra and "uly" in extra:
        return int(extra["epsg"]), int(extra["ulx"]), int(extra["uly"])
    if not ring:
        return 32632, 300000, 5000040
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    zone = int((np.mean(lons) + 180) // 6) + 1
    epsg = int(extra.get("epsg", (32600 if np.mean(lats) >= 0 else 32700) + zone))
    xs, ys = transform("EPSG:4326", f"EPSG:{epsg}", lons, lats)
    return epsg, int(math.floor(min(xs) / 60) * 60), int(math.ceil(max(ys) / 60) * 60)


def sun_angles(lon: np.ndarray, lat: np.ndarray, when: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Solar zenith and azimuth (degrees, azimuth clockwise from north), NOAA's formulas."""
    when = _utc(when)
    doy = when.timetuple().tm_yday
    hours = when.hour + when.minute / 60 + when.second / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hours - 12) / 24)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g)
            - 0.006758 * math.cos(2 * g) + 0.000907 * math.sin(2 * g)
            - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    hour_angle = np.radians((hours * 60 + eqtime + 4 * lon) / 4 - 180)
    phi = np.radians(lat)
    cos_zen = np.sin(phi) * math.sin(decl) + np.cos(phi) * math.cos(decl) * np.cos(hour_angle)
    zenith = np.degrees(np.arccos(np.clip(cos_zen, -1, 1)))
    azimuth = np.degrees(np.arctan2(np.sin(hour_angle), np.cos(hour_angle) * np.sin(phi)
                                    - math.tan(decl) * np.cos(phi))) + 180.0
    return zenith, azimuth % 360.0


def earth_sun_factor(when: datetime) -> float:
    """U, the reflectance correction for the Sun–Earth distance (ESA L1C formula)."""
    doy = _utc(when).timetuple().tm_yday
    return 1.0 / (1.0 - 0.01673 * math.cos(0.0172 * (doy - 4))) ** 2


def storage_chunks(size: int, override: int | None = None) -> dict[int, int]:
    """Chunk side per resolution: CPM's 1830/915/305 on full tiles, else >= 2×2 chunks."""
    if override is not None:
        c10 = int(override)
    elif size % FULL_CHUNK_10M == 0:
        c10 = FULL_CHUNK_10M
    else:
        c10 = min(FULL_CHUNK_10M, 6 * math.ceil(math.ceil(size / 2) / 6))
    if c10 <= 0 or c10 % 6:
        raise ValueError(f"the 10 m chunk must be a positive multiple of 6, got {c10}")
    return {10: c10, 20: c10 // 2, 60: c10 // 6}


def _band_entry(band: str, platform: str) -> dict[str, Any]:
    common, centre, fwhm, res = BAND_INFO[band]
    solar = SOLAR_ILLUMINATION.get(platform, SOLAR_ILLUMINATION["sentinel-2b"])[band]
    return {
        "name": band, "description": f"{common} ({res} m)",
        "eo:common_name": common, "eo:center_wavelength": centre,
        "eo:full_width_half_max": fwhm, "eo:solar_illumination": solar, "gsd": res,
        # legacy keys of the 2025 Sample Service products (centre in nm)
        "common_name": common, "center_wavelength": round(centre * 1000, 1),
        "solar_illumination": solar,
    }


def _band_description() -> dict[str, dict[str, Any]]:
    out = {}
    for band, (_common, centre, fwhm, res) in BAND_INFO.items():
        key = band[1:].upper()
        out[key] = {"units": "nm", "central_wavelength": round(centre * 1000, 1),
                    "bandwidth": round(fwhm * 1000, 1),
                    "wavelength_min": round((centre - fwhm / 2) * 1000, 1),
                    "wavelength_max": round((centre + fwhm / 2) * 1000, 1),
                    "spatial_resolution": res}
    return out


def _bbox(ring: list[list[float]]) -> list[float]:
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    return [min(lons), min(lats), max(lons), max(lats)]


def _grid_footprint(epsg: int, ulx: int, uly: int, extent: int) -> dict[str, Any]:
    from rasterio.warp import transform

    xs = [ulx, ulx + extent, ulx + extent, ulx, ulx]
    ys = [uly, uly, uly - extent, uly - extent, uly]
    lons, lats = transform(f"EPSG:{epsg}", "EPSG:4326", xs, ys)
    return {"type": "Polygon",
            "coordinates": [[[round(a, 6), round(b, 6)] for a, b in zip(lons, lats,
                                                                          strict=True)]]}


def _baseline_offset(baseline: str) -> float:
    return OFFSET_PB04 if float(baseline) >= 4.0 else 0.0


def _stac_discovery(spec: SampleSpec, epsg: int, ulx: int, uly: int, baseline: str,
                    cover: dict[str, float]) -> dict[str, Any]:
    extent = spec.size * 10
    geometry = dict(spec.footprint) if spec.footprint else _grid_footprint(epsg, ulx, uly,
                                                                           extent)
    platform = spec.platform.lower()
    props: dict[str, Any] = {
        "datetime": _iso(spec.start), "start_datetime": _iso(spec.start),
        "end_datetime": _iso(spec.stop),
        "platform": platform, "constellation": "sentinel-2", "instruments": ["msi"],
        "instrument": "msi", "gsd": 10,
        "product:type": "S02MSIL1C",
        "product:timeliness_category": spec.extra.get("timeliness", "NRT"),
        "processing:level": "L1C", "processing:version": baseline, "eopf:baseline": baseline,
        "eopf:type": "S02MSIL1C", "eopf:instrument_mode": "INS-NOBS",
        "eopf:resolutions": {"r10m": [spec.size] * 2, "r20m": [spec.size // 2] * 2,
                             "r60m": [spec.size // 6] * 2},
        "proj:code": f"EPSG:{epsg}", "proj:epsg": epsg,
        "proj:bbox": [ulx, uly - extent, ulx + extent, uly],
        "proj:shape": [spec.size, spec.size],
        "proj:transform": [10, 0, ulx, 0, -10, uly],
        "sat:absolute_orbit": spec.absolute_orbit, "sat:relative_orbit": spec.relative_orbit,
        "sat:orbit_state": spec.extra.get("orbit_state", "descending"),
        "eo:cloud_cover": cover["cloud"], "eo:snow_cover": cover["snow"],
        "bands": [_band_entry(b, platform) for b in ALL_BANDS],
    }
    if platform in INTERNATIONAL_DESIGNATOR:
        props["sat:platform_international_designator"] = INTERNATIONAL_DESIGNATOR[platform]
    if "tile" in spec.extra:
        props["grid:code"] = f"MGRS-{str(spec.extra['tile']).removeprefix('T')}"
    return {
        "type": "Feature", "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eopf/v1.2.0/schema.json",
            "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.1.0/schema.json",
            "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
            "https://stac-extensions.github.io/product/v1.0.0/schema.json",
            "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
        ],
        "id": spec.name, "geometry": geometry, "bbox": _bbox(_ring(geometry)),
        "properties": props,
        "links": [{"rel": "self", "href": "./.zattrs.json", "type": "application/json"}],
        "assets": {},
    }


# --- the tree -----------------------------------------------------------------------------


def _coords(origin: int, n: int, res: int, sign: int) -> np.ndarray:
    """Pixel-centre coordinates (int64 metres)."""
    return (origin + sign * (res // 2 + res * np.arange(n))).astype(np.int64)


def _coord(values: np.ndarray, dim: str, name: str) -> xr.DataArray:
    out = xr.DataArray(values, dims=(dim,), attrs={"long_name": name, "units": "m"})
    out.encoding = {"chunks": (len(values),)}
    return out


def _lazy(n: int, chunk: int, dtype: type, name: str,
          fn: Callable[[int, int, int, int], np.ndarray], *token: Any) -> da.Array:
    """An ``n``×``n`` Dask array whose blocks are ``fn(r0, r1, c0, c1)``."""

    def block(template: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[0]["array-location"]
        return fn(r0, r1, c0, c1)

    template = da.zeros((n, n), dtype=np.uint8, chunks=chunk)
    return da.map_blocks(block, template, dtype=dtype,
                         name=f"s2-l1c-{name}-{tokenize(n, chunk, *token)}")


def _mask(data: da.Array, dims: tuple[str, str], coords: dict, chunk: int,
          attrs: dict[str, Any]) -> xr.DataArray:
    out = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs)
    out.encoding = {"dtype": "uint8", "chunks": (chunk, chunk)}
    return out


def make_s2_l1c(spec: SampleSpec) -> xr.DataTree:
    """An EOPF ``S02MSIL1C`` product of ``spec.size``² 10 m pixels (a multiple of 6).

    ``spec.extra``: ``chunk_10m`` (storage chunk override, multiple of 6), ``features``
    (bool, default True), ``baseline`` (default ``"05.11"``; < 04.00 means offset 0),
    ``tile``, ``epsg``/``ulx``/``uly``, ``timeliness``, ``orbit_state``.
    """
    if spec.size <= 0 or spec.size % 6:
        raise ValueError(f"S2 size (10 m pixels) must be a positive multiple of 6, "
                         f"got {spec.size}")
    chunks = storage_chunks(spec.size, spec.extra.get("chunk_10m"))
    baseline = str(spec.extra.get("baseline", "05.11"))
    offset = _baseline_offset(baseline)
    epsg, ulx, uly = grid_origin(spec)
    with_features = bool(spec.extra.get("features", True))
    n60 = spec.size // 6
    scene = _Scene(
        size=spec.size, seed=spec.seed, offset=offset,
        features=make_features(spec.size, spec.seed) if with_features else (),
        with_nodata=with_features,
    )
    token = (scene.size, scene.seed, scene.offset, scene.features, scene.with_nodata)
    b00 = classification_block(scene, 0, n60, 0, n60)  # small: for the cover percentages
    valid = ~scene.nodata(6, 0, n60, 0, n60)
    cover = {
        "cloud": round(100.0 * float(((b00 & 3) > 0)[valid].mean()), 2) if valid.any() else 0.0,
        "snow": round(100.0 * float(((b00 & 4) > 0)[valid].mean()), 2) if valid.any() else 0.0,
    }
    groups: dict[str, xr.Dataset] = {}
    quality: dict[str, xr.Dataset] = {}
    for res, bands in RESOLUTIONS.items():
        n = spec.size * 10 // res
        coords = {"y": _coord(_coords(uly, n, res, -1), "y", "y"),
                  "x": _coord(_coords(ulx, n, res, +1), "x", "x")}
        proj = {"proj:epsg": epsg, "proj:shape": [n, n],
                "proj:bbox": [ulx, uly - n * res, ulx + n * res, uly],
                "proj:transform": [res, 0, ulx, 0, -res, uly]}
        variables = {}
        for band in bands:
            pixels = _lazy(n, chunks[res], np.float64, band,
                           functools.partial(reflectance_block, scene, band, res // 10), *token)
            raw = xr.DataArray(pixels, dims=("y", "x"), coords=coords, attrs=proj)
            variables[band] = scaled(
                raw, scale_factor=SCALE_FACTOR, add_offset=offset, fill_value=0,
                chunks=(chunks[res], chunks[res]), units="digital_counts",
                long_name=f"TOA reflectance from native {band} band",
                short_name=f"{band}_{res}m", valid_range=(1, 65535))
        groups[f"r{res}m"] = xr.Dataset(variables)
        qflags = _lazy(n, chunks[res], np.uint8, f"quality{res}",
                       functools.partial(quality_block, scene, res // 10), *token)
        quality[f"r{res}m"] = xr.Dataset({
            band: _mask(qflags, ("y", "x"), coords, chunks[res], {
                "long_name": f"quality mask of {band}",
                "flag_masks": [1, 2, 4, 8, 16, 32, 64, 128],
                "flag_meanings": "ANC_LOST ANC_DEG MSI_LOST MSI_DEG DEFECTIVE NODATA "
                                 "PARTIALLY_CORRECTED SATURATED"})
            for band in bands})
    coords60 = groups["r60m"].coords
    classification = xr.Dataset({"b00": _mask(
        _lazy(n60, chunks[60], np.uint8, "b00", functools.partial(classification_block, scene),
              *token), ("y", "x"), dict(coords60), chunks[60],
        {"long_name": "L1C cloud and snow classification", "flag_masks": [1, 2, 4],
         "flag_meanings": "OPAQUE CIRRUS SNOW_ICE"})})
    geometry, mean_angles = _geometry(spec, epsg, ulx, uly)
    tree = xr.DataTree.from_dict({
        **{f"/measurements/reflectance/{k}": v for k, v in groups.items()},
        "/conditions/geometry": geometry,
        "/conditions/mask/l1c_classification/r60m": classification,
        **{f"/quality/mask/{k}": v for k, v in quality.items()},
    })
    tree.attrs = {
        "stac_discovery": _stac_discovery(spec, epsg, ulx, uly, baseline, cover),
        "other_metadata": _other_metadata(spec, epsg, mean_angles, with_features),
    }
    return tree


def _geometry(spec: SampleSpec, epsg: int, ulx: int, uly: int
              ) -> tuple[xr.Dataset, tuple[float, float]]:
    """Sun angles on the 5 km corner grid and their mean."""
    from rasterio.warp import transform

    n = math.ceil(spec.size * 10 / SUN_GRID_STEP) + 1
    xs = ulx + SUN_GRID_STEP * np.arange(n, dtype=np.int64)
    ys = uly - SUN_GRID_STEP * np.arange(n, dtype=np.int64)
    gx, gy = np.meshgrid(xs, ys)
    lon, lat = transform(f"EPSG:{epsg}", "EPSG:4326", gx.ravel().tolist(), gy.ravel().tolist())
    middle = spec.start + (spec.stop - spec.start) / 2
    zen, azi = sun_angles(np.asarray(lon), np.asarray(lat), middle)
    angles = np.stack([zen.reshape(n, n), azi.reshape(n, n)])
    mean = (float(zen.mean()), float(azi.mean()))
    coords = {"angle": np.array(["zenith", "azimuth"]),
              "y": _coord(ys, "y", "y"), "x": _coord(xs, "x", "x")}
    ds = xr.Dataset(
        {"sun_angles": xr.DataArray(angles, dims=("angle", "y", "x"),
                                    attrs={"units": "deg", "long_name": "sun angles"}),
         "mean_sun_angles": xr.DataArray(np.array(mean), dims=("angle",),
                                         attrs={"units": "deg"})},
        coords=coords,
    )
    return ds, mean


def _other_metadata(spec: SampleSpec, epsg: int, mean_angles: tuple[float, float],
                    with_features: bool) -> dict[str, Any]:
    middle = spec.start + (spec.stop - spec.start) / 2
    zone = epsg % 100
    hemisphere = "N" if epsg < 32700 else "S"
    return {
        "eopf_category": "eoproduct",
        "horizontal_CRS_code": f"EPSG:{epsg}",
        "horizontal_CRS_name": f"WGS84 / UTM zone {zone}{hemisphere}",
        "utm_zone_identification": f"UTM{zone}{hemisphere}",
        "mean_sensing_time": _iso(middle),
        "mean_sun_zenith_angle_in_deg_for_all_bands_all_detectors": mean_angles[0],
        "mean_sun_azimuth_angle_in_deg_for_all_bands_all_detectors": mean_angles[1],
        "reflectance_correction_factor_from_the_sun_earth_distance_variation_computed_using_"
        "the_acquisition_date": earth_sun_factor(middle),
        "band_description": _band_description(),
        "product_quality_status": "PASSED",
        "synthetic_sample": {
            "pixels": "10 m bands: real Sentinel-2 patch from spyndex data/S2_10m.json "
                      "(surface reflectance x 10000, used as TOA), mirror-tiled; other bands "
                      "derived from it",
            "features": "seeded clouds, cirrus, snow, water and a no-data corner"
                        if with_features else "none",
            "seed": spec.seed,
        },
    }
