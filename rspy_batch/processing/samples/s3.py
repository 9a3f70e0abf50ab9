"""Synthetic Sentinel-3 OLCI L1 EFR products (``S03OLCEFR``), layout per CPM 2.8.1.

The tree follows ``eopf-products.md`` §1.7 (groups, variable names, dtypes, fill values,
units). Pixels come from analytic fields over the normalised image position, so every
Dask block is computed independently and the same :class:`SampleSpec` gives the same bytes:

- a land/water pattern and a bright (cloud-like) blob give a true reflectance per band;
- the sun zenith angle is a smooth field; the tie-point grid samples that field, and the
  radiance is ``rho * F0[band, detector] * cos(SZA) / pi`` with the exact per-pixel SZA,
  so a correct TOA-reflectance processor recovers ``rho`` up to interpolation error;
- ``invalid`` pixels (flagged; fill radiance in about half the bands, a normal-looking
  value in the others) and per-band drop-outs (fill radiance, not flagged) are scattered
  with a block-seeded RNG.

Tie-point grid: EFR sub-samples columns 64:1 and keeps every row (legacy
``ac_subsampling_factor`` / ``al_subsampling_factor``). Tie point ``(i, j)`` sits on image
pixel ``(i * al, j * ac)``; the grid extends to the first tie point at or past the last
pixel, as in real products (4865 columns -> 77 tie points). The factors are recorded on
every ``conditions/geometry`` variable and in ``other_metadata``; ``spec.extra`` may set
smaller ones (``ac_subsampling``, ``al_subsampling``) for tiny test products.

``spec.extra`` keys: ``rows``, ``columns`` (default ``spec.size``), ``ac_subsampling`` (64),
``al_subsampling`` (1), ``detectors`` (min(3700, columns)), ``orbit_state``
("descending"), ``timeliness`` ("NT"), ``invalid_fraction`` (0.01), ``dropout_fraction``
(0.005). Radiance scale factors, solar fluxes and band widths are approximate nominal OLCI
values: good enough for a physically plausible product, not calibration data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from rspy_batch.processing.product import scaled
from rspy_batch.processing.samples import SampleSpec

PRODUCT_TYPE = "S03OLCEFR"
N_BANDS = 21
#: nm, OLCI band centres (Oa01..Oa21)
CENTRAL_WAVELENGTHS = (400.0, 412.5, 442.5, 490.0, 510.0, 560.0, 620.0, 665.0, 673.75,
                       681.25, 708.75, 753.75, 761.25, 764.375, 767.5, 778.75, 865.0,
                       885.0, 900.0, 940.0, 1020.0)
#: nm, nominal band widths
FWHM = (15.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 7.5, 7.5, 10.0, 7.5, 2.5, 3.75,
        2.5, 15.0, 20.0, 10.0, 10.0, 20.0, 40.0)
#: mW.m-2.nm-1, approximate in-band extra-terrestrial solar irradiance at 1 AU
SOLAR_FLUX_1AU = (1714.9, 1872.4, 1926.6, 1930.2, 1804.3, 1651.6, 1531.4, 1475.6, 1441.0,
                  1423.0, 1378.0, 1265.0, 1245.0, 1240.0, 1235.0, 1203.0, 955.1, 914.2,
                  882.8, 815.0, 701.0)
#: radiance ``scale_factor`` per band (legacy netCDF values, rounded); add_offset is 0
RADIANCE_SCALE = (0.0139465, 0.0133873, 0.0121481, 0.0115198, 0.0100953, 0.0090939,
                  0.0081613, 0.0073188, 0.0071144, 0.0070686, 0.0068399, 0.0061572,
                  0.0059887, 0.0059961, 0.0059959, 0.0056008, 0.0053085, 0.0050815,
                  0.0048681, 0.0043825, 0.0035966)
RADIANCE_FILL = 65535
RADIANCE_UNITS = "mW.m-2.sr-1.nm-1"

#: legacy OLCI L1 ``quality_flags`` bits: saturated_OaNN on bits 0..20, then these
FLAG_BITS: dict[str, int] = {
    **{f"saturated@Oa{b:02d}": 1 << (b - 1) for b in range(1, N_BANDS + 1)},
    "dubious": 1 << 21,
    "sun-glint_risk": 1 << 22,
    "duplicated": 1 << 23,
    "cosmetic": 1 << 24,
    "invalid": 1 << 25,
    "straylight_risk": 1 << 26,
    "bright": 1 << 27,
    "tidal_region": 1 << 28,
    "fresh_inland_water": 1 << 29,
    "coastline": 1 << 30,
    "land": 1 << 31,
}

_DEFAULT_FOOTPRINT = {"type": "Polygon", "coordinates": [[
    [5.0, 40.0], [15.0, 40.0], [15.0, 50.0], [5.0, 50.0], [5.0, 40.0]]]}

# true reflectance spectra (per band) of the synthetic surface classes
_WATER = np.interp(CENTRAL_WAVELENGTHS, [400, 560, 700, 1020], [0.09, 0.05, 0.02, 0.01])
_LAND = np.interp(CENTRAL_WAVELENGTHS, [400, 560, 665, 720, 865, 1020],
                  [0.04, 0.09, 0.05, 0.30, 0.42, 0.40])
_CLOUD = 0.75
_MAX_RHO = 0.8  # keeps every band below its uint16 range at any SZA >= 15 deg

BlockFn = Callable[[np.ndarray, np.ndarray, tuple[int, int]], np.ndarray]


def storage_chunk(n: int) -> int:
    """OLCI's 1024 chunks, but at least two chunks along a tiny dimension."""
    return max(1, min(1024, math.ceil(n / 2)))


def tie_point_count(n: int, step: int) -> int:
    """Tie points needed so the last one is at or past pixel ``n - 1``."""
    return math.ceil((n - 1) / step) + 1 if n > 1 else 1


def bbox_of(geometry: dict[str, Any]) -> list[float]:
    """[west, south, east, north] of a GeoJSON Polygon (no antimeridian handling)."""
    ring = np.asarray(geometry["coordinates"][0], dtype=float)
    return [float(ring[:, 0].min()), float(ring[:, 1].min()),
            float(ring[:, 0].max()), float(ring[:, 1].max())]


def _uv(r: np.ndarray, c: np.ndarray, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised pixel-centre position (u along columns, v along rows), both in 0..1."""
    return (c + 0.5) / columns, (r + 0.5) / rows


def _land_score(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.sin(2 * np.pi * (1.3 * u + 0.2)) * np.cos(2 * np.pi * 0.9 * v)
            + 0.3 * np.sin(2 * np.pi * (3 * u + 2 * v)))


def _cloud_score(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.exp(-((u - 0.7) ** 2 + (v - 0.3) ** 2) / 0.01)


def _sun_zenith(u: np.ndarray, v: np.ndarray, centre: float) -> np.ndarray:
    """Degrees; smooth but not linear across the swath, so interpolation matters."""
    return centre + 6.0 * (v - 0.5) + 4.0 * np.sin(np.pi * (u - 0.5)) + 3.0 * (u - 0.5) ** 2


def _detector(r: np.ndarray, c: np.ndarray, columns: int, detectors: int) -> np.ndarray:
    """Detector seen by each pixel: mostly by column, shifted by +-1 in row groups
    (a stand-in for OLCI's along-track frame offsets between cameras)."""
    base = np.floor((c + 0.5) / columns * detectors).astype(np.int64)
    shift = (r // 7) % 3 - 1
    return np.clip(base + shift, 0, detectors - 1)


def _sza_centre(lat: float, when: datetime) -> float:
    """Noon-like sun zenith from latitude and the solar declination of the day."""
    doy = when.timetuple().tm_yday
    declination = 23.44 * math.sin(2 * math.pi * (284 + doy) / 365)
    return float(min(70.0, max(20.0, abs(lat - declination))))


def sun_distance_factor(when: datetime) -> float:
    """(1 AU / d)^2 for the day: the seasonal correction already in ``solar_flux``."""
    doy = when.timetuple().tm_yday
    return (1 + 0.0167 * math.cos(2 * math.pi * (doy - 3) / 365)) ** 2


def solar_flux_table(detectors: int, when: datetime) -> np.ndarray:
    """(bands, detectors) float32: nominal flux, per-detector ripple, seasonal factor."""
    ripple = 1 + 0.01 * np.sin(np.arange(detectors) / max(detectors, 1) * 9.0)
    table = np.outer(SOLAR_FLUX_1AU, ripple) * sun_distance_factor(when)
    return table.astype(np.float32)


def _pixels(fn: BlockFn, shape: tuple[int, int], chunks: tuple[int, int],
            dtype: Any) -> da.Array:
    """A lazy (rows, columns) array whose blocks are ``fn(rows_idx, cols_idx, origin)``."""

    def block(block_info: dict | None = None) -> np.ndarray:
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        r = np.arange(r0, r1)[:, None]
        c = np.arange(c0, c1)[None, :]
        return fn(r, c, (r0, c0)).astype(dtype, copy=False)

    return da.map_blocks(block, dtype=dtype, chunks=da.core.normalize_chunks(chunks, shape),
                         meta=np.empty((0, 0), dtype=dtype))


class _Scene:
    """The analytic scene of one spec: everything a block needs to compute itself."""

    def __init__(self, spec: SampleSpec) -> None:
        extra = spec.extra
        self.spec = spec
        self.rows = int(extra.get("rows", spec.size))
        self.columns = int(extra.get("columns", spec.size))
        if self.rows < 1 or self.columns < 1:
            raise ValueError(f"OLCI sample needs a positive size, got "
                             f"{self.rows}x{self.columns}")
        self.ac = int(extra.get("ac_subsampling", 64))
        self.al = int(extra.get("al_subsampling", 1))
        self.detectors = int(extra.get("detectors", min(3700, self.columns)))
        self.invalid_fraction = float(extra.get("invalid_fraction", 0.01))
        self.dropout_fraction = float(extra.get("dropout_fraction", 0.005))
        self.footprint = spec.footprint or _DEFAULT_FOOTPRINT
        self.bbox = bbox_of(self.footprint)
        west, south, east, north = self.bbox
        self.sza_centre = _sza_centre((south + north) / 2, spec.start)
        self.flux = solar_flux_table(self.detectors, spec.start)
        self.shape = (self.rows, self.columns)
        self.chunks = (storage_chunk(self.rows), storage_chunk(self.columns))

    # per-block random draws: keyed by (seed, stream, block origin), so any scheduler order
    # and any subset of blocks gives the same values
    def _rng(self, stream: int, origin: tuple[int, int]) -> np.random.Generator:
        return np.random.default_rng([self.spec.seed, stream, *origin])

    def invalid(self, r: np.ndarray, c: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        shape = np.broadcast_shapes(r.shape, c.shape)
        return self._rng(0, origin).random(shape) < self.invalid_fraction

    def latitude(self, r: np.ndarray, c: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        u, v = _uv(r, c, self.rows, self.columns)
        west, south, east, north = self.bbox
        return north - (north - south) * v + 0.02 * (north - south) * (u - 0.5)

    def longitude(self, r: np.ndarray, c: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        u, v = _uv(r, c, self.rows, self.columns)
        west, south, east, north = self.bbox
        return west + (east - west) * u - 0.05 * (east - west) * (v - 0.5)

    def detector_index(self, r: np.ndarray, c: np.ndarray,
                       origin: tuple[int, int]) -> np.ndarray:
        return np.broadcast_to(_detector(r, c, self.columns, self.detectors),
                               np.broadcast_shapes(r.shape, c.shape))

    def flags(self, r: np.ndarray, c: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
        u, v = _uv(r, c, self.rows, self.columns)
        score = _land_score(u, v)
        out = np.where(score > 0.1, FLAG_BITS["land"], 0).astype(np.uint32)
        out |= np.where(np.abs(score - 0.1) < 0.05, FLAG_BITS["coastline"], 0).astype(np.uint32)
        out |= np.where(_cloud_score(u, v) > 0.5, FLAG_BITS["bright"], 0).astype(np.uint32)
        out |= np.where(self.invalid(r, c, origin), FLAG_BITS["invalid"], 0).astype(np.uint32)
        return out

    def radiance_counts(self, band: int) -> BlockFn:
        """Raw uint16 counts of band ``band`` (1-based)."""
        scale = RADIANCE_SCALE[band - 1]

        def fn(r: np.ndarray, c: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
            u, v = _uv(r, c, self.rows, self.columns)
            land = _land_score(u, v) > 0.1
            rho = np.where(land, _LAND[band - 1], _WATER[band - 1])
            rho = np.maximum(rho, _CLOUD * (_cloud_score(u, v) > 0.5))
            rng = self._rng(band, origin)
            shape = np.broadcast_shapes(r.shape, c.shape)
            rho = np.clip(rho * (1 + 0.02 * rng.standard_normal(shape)), 0.0, _MAX_RHO)
            f0 = self.flux[band - 1][_detector(r, c, self.columns, self.detectors)]
            sza = _sun_zenith(u, v, self.sza_centre)
            radiance = rho * f0 * np.cos(np.deg2rad(sza)) / np.pi
            counts = np.minimum(np.round(radiance / scale), RADIANCE_FILL - 1)
            # invalid pixels lose their radiance in about half the bands only, so a reader
            # has to honour the flag, not just the fill value
            invalid = self.invalid(r, c, origin) & (rng.random(shape) < 0.5)
            gone = invalid | (rng.random(shape) < self.dropout_fraction)
            return np.where(gone, RADIANCE_FILL, counts)

        return fn

    def tie_points(self) -> dict[str, np.ndarray]:
        """Angles and lat/lon on the tie-point grid (small: loaded eagerly)."""
        r = (np.arange(tie_point_count(self.rows, self.al)) * self.al)[:, None]
        c = (np.arange(tie_point_count(self.columns, self.ac)) * self.ac)[None, :]
        u, v = _uv(r, c, self.rows, self.columns)
        shape = np.broadcast_shapes(r.shape, c.shape)
        return {
            "sza": np.broadcast_to(_sun_zenith(u, v, self.sza_centre), shape),
            "saa": np.broadcast_to(140.0 + 20.0 * u - 5.0 * v, shape),
            "oza": np.broadcast_to(np.abs(u - 0.5) * 110.0, shape),
            "oaa": np.broadcast_to(np.where(u < 0.5, 100.0, -80.0), shape),
            "latitude": self.latitude(r, c, (0, 0)) + np.zeros(shape),
            "longitude": self.longitude(r, c, (0, 0)) + np.zeros(shape),
        }


def _lat_lon(lat: Any, lon: Any, *, chunks: tuple[int, int] | None,
             what: str) -> dict[str, xr.DataArray]:
    dims = ("rows", "columns")
    return {
        "latitude": scaled(xr.DataArray(lat, dims=dims, attrs={"standard_name": "latitude"}),
                           scale_factor=1e-6, fill_value=-2147483648, dtype="int32",
                           chunks=chunks, units="degrees_north", long_name=f"latitude {what}",
                           short_name="latitude", valid_range=(-90000000, 90000000)),
        "longitude": scaled(xr.DataArray(lon, dims=dims, attrs={"standard_name": "longitude"}),
                            scale_factor=1e-6, fill_value=-2147483648, dtype="int32",
                            chunks=chunks, units="degrees_east", long_name=f"longitude {what}",
                            short_name="longitude", valid_range=(-180000000, 180000000)),
    }


def _time_stamp(spec: SampleSpec, rows: int) -> xr.DataArray:
    start = np.datetime64(spec.start.replace(tzinfo=None), "ns")
    stop = np.datetime64(spec.stop.replace(tzinfo=None), "ns")
    step = (stop - start) / max(rows, 1)
    values = start + step * np.arange(rows)
    ts = xr.DataArray(values.astype("datetime64[ns]"), dims=("rows",),
                      attrs={"long_name": "time stamp of each row", "standard_name": "time"})
    ts.encoding = {"units": "nanoseconds since 1970-01-01", "calendar": "proleptic_gregorian",
                   "dtype": "int64"}
    return ts


def _measurements(scene: _Scene, spec: SampleSpec) -> xr.Dataset:
    lat = _pixels(scene.latitude, scene.shape, scene.chunks, np.float64)
    lon = _pixels(scene.longitude, scene.shape, scene.chunks, np.float64)
    coords: dict[str, xr.DataArray] = {
        **_lat_lon(lat, lon, chunks=scene.chunks, what="of pixels"),
        "time_stamp": _time_stamp(spec, scene.rows),
    }
    variables = {}
    for band in range(1, N_BANDS + 1):
        name = f"oa{band:02d}_radiance"
        counts = _pixels(scene.radiance_counts(band), scene.shape, scene.chunks, np.float64)
        scale = RADIANCE_SCALE[band - 1]
        physical = xr.DataArray(
            da.where(counts == RADIANCE_FILL, np.nan, counts * scale), dims=("rows", "columns"),
            coords=coords,
            attrs={"standard_name": "toa_upwelling_spectral_radiance",
                   "description": f"TOA radiance for OLCI acquisition band oa{band:02d}"})
        variables[name] = scaled(
            physical, scale_factor=scale, add_offset=0.0, fill_value=RADIANCE_FILL,
            dtype="uint16", chunks=scene.chunks, units=RADIANCE_UNITS, short_name=name,
            long_name=f"TOA radiance for OLCI acquisition band {band:02d}",
            valid_range=(0, RADIANCE_FILL - 1))
    return xr.Dataset(variables, coords=coords)


def _quality(scene: _Scene) -> xr.Dataset:
    flags = xr.DataArray(
        _pixels(scene.flags, scene.shape, scene.chunks, np.uint32), dims=("rows", "columns"),
        attrs={"long_name": "classification and quality flags",
               "flag_masks": list(FLAG_BITS.values()),
               "flag_meanings": " ".join(FLAG_BITS)})
    flags.encoding = {"dtype": "uint32", "_FillValue": None, "chunks": scene.chunks}
    return xr.Dataset({"quality_flags": flags})


_ANGLES = {
    "sza": ("sun zenith angle", "uint32", 4294967295, (0, 180000000)),
    "saa": ("sun azimuth angle", "int32", -2147483648, (-180000000, 180000000)),
    "oza": ("observation (viewing) zenith angle", "uint32", 4294967295, (0, 180000000)),
    "oaa": ("observation (viewing) azimuth angle", "int32", -2147483648,
            (-180000000, 180000000)),
}


def _geometry(scene: _Scene) -> xr.Dataset:
    tp = scene.tie_points()
    coords = _lat_lon(tp["latitude"], tp["longitude"], chunks=None, what="of tie points")
    grid = {"ac_subsampling_factor": scene.ac, "al_subsampling_factor": scene.al}
    variables = {}
    for name, (long_name, dtype, fill, valid) in _ANGLES.items():
        arr = xr.DataArray(tp[name], dims=("rows", "columns"), coords=coords, attrs=grid)
        variables[name] = scaled(arr, scale_factor=1e-6, fill_value=fill, dtype=dtype,
                                 units="degrees", long_name=long_name, short_name=name,
                                 valid_range=valid)
    return xr.Dataset(variables, coords=coords)


def _image(scene: _Scene) -> xr.Dataset:
    det = xr.DataArray(
        _pixels(scene.detector_index, scene.shape, scene.chunks, np.int16),
        dims=("rows", "columns"),
        attrs={"long_name": "detector index for each pixel", "valid_min": 0,
               "valid_max": scene.detectors - 1,
               "_eopf_attrs": {"dimensions": ["rows", "columns"], "dtype": "<i2",
                               "fill_value": -1, "eopf_is_masked": True,
                               "short_name": "detector_index"}})
    det.encoding = {"dtype": "int16", "_FillValue": -1, "chunks": scene.chunks}
    return xr.Dataset({"detector_index": det})


def _instrument(scene: _Scene) -> xr.Dataset:
    n = scene.detectors
    dims = ("bands", "detectors")
    shift = 0.1 * np.sin(np.arange(n) / max(n, 1) * 5.0)
    lambda0 = (np.asarray(CENTRAL_WAVELENGTHS)[:, None] + shift[None, :]).astype(np.float32)
    fwhm = np.repeat(np.asarray(FWHM, dtype=np.float32)[:, None], n, axis=1)

    def table(values: np.ndarray, long_name: str, units: str) -> xr.DataArray:
        arr = xr.DataArray(values, dims=dims, attrs={"long_name": long_name, "units": units})
        arr.encoding = {"dtype": "float32"}
        return arr

    return xr.Dataset(
        {"solar_flux": table(scene.flux, "in-band solar irradiance, seasonally corrected",
                             "mW.m-2.nm-1"),
         "lambda0": table(lambda0, "OLCI characterised central wavelength", "nm"),
         "fwhm": table(fwhm, "OLCI bandwidth (Full Width at Half Maximum)", "nm")},
        coords={"detectors": ("detectors", np.arange(n, dtype=np.int64),
                              {"long_name": "instrument detectors"})})


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stac_discovery(spec: SampleSpec, scene: _Scene) -> dict[str, Any]:
    """The STAC 1.1.0 item embedded in the root attributes."""
    platform = spec.platform or "sentinel-3a"
    designator = {"sentinel-3a": "2016-011A", "sentinel-3b": "2018-039A"}.get(platform)
    bands = [{"name": f"oa{b:02d}", "description": f"OLCI band Oa{b:02d}",
              "eo:center_wavelength": CENTRAL_WAVELENGTHS[b - 1] / 1000.0,
              "eo:full_width_half_max": FWHM[b - 1] / 1000.0}
             for b in range(1, N_BANDS + 1)]
    properties: dict[str, Any] = {
        "datetime": _iso(spec.start),
        "start_datetime": _iso(spec.start),
        "end_datetime": _iso(spec.stop),
        "platform": platform,
        "constellation": "sentinel-3",
        "instruments": ["olci"],
        "gsd": 300,
        "product:type": PRODUCT_TYPE,
        "product:timeliness_category": str(spec.extra.get("timeliness", "NT")),
        "processing:level": "L1",
        "sat:absolute_orbit": spec.absolute_orbit,
        "sat:relative_orbit": spec.relative_orbit,
        "sat:orbit_state": str(spec.extra.get("orbit_state", "descending")),
        "bands": bands,
    }
    if designator:
        properties["sat:platform_international_designator"] = designator
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.1.0/schema.json",
            "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
            "https://stac-extensions.github.io/product/v0.1.0/schema.json",
        ],
        "id": spec.name,
        "geometry": scene.footprint,
        "bbox": scene.bbox,
        "properties": properties,
        "links": [],
        "assets": {},
    }


def make_s3_olci_efr(spec: SampleSpec) -> xr.DataTree:
    """A lazy ``S03OLCEFR`` product of ``rows`` x ``columns`` pixels (see module doc)."""
    scene = _Scene(spec)
    root = xr.Dataset(attrs={
        "stac_discovery": stac_discovery(spec, scene),
        "other_metadata": {
            "eopf_category": "eoproduct",
            "synthetic": True,
            "tie_point_grid": {"ac_subsampling_factor": scene.ac,
                               "al_subsampling_factor": scene.al},
            "seasonal_sun_distance_factor": sun_distance_factor(spec.start),
            "detectors": scene.detectors,
        },
    })
    return xr.DataTree.from_dict({
        "/": root,
        "measurements": _measurements(scene, spec),
        "quality": _quality(scene),
        "conditions/geometry": _geometry(scene),
        "conditions/image": _image(scene),
        "conditions/instrument": _instrument(scene),
    })
