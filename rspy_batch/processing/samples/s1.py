"""Synthetic Sentinel-1 IW GRD products (``S01SIWGRD``), laid out as EOPF writes them.

The layout follows ``eopf-products.md`` §1.6: the product is an **EOContainer** whose root
carries ``stac_discovery`` and ``other_metadata.eopf_category = "eocontainer"``, with one
child product per polarisation, named the CPM way
(``S01SIWGRD_<start>_<duration>_<platform letter><rel. orbit>_<crc>_<datatake>_<pol>``).
Each child holds::

    measurements/grd                           <u2 (azimuth_time, ground_range), 0 = no data
    quality/calibration/{sigma_nought,beta_nought,gamma,dn}
                                               <f4 sparse grid (azimuth_time, ground_range),
                                               coords line/pixel <u4 = full-resolution row/col
    quality/noise_range/noise_range_lut        <f4 sparse grid, own line/pixel nodes
    quality/noise_azimuth/noise_azimuth_lut    <f4 (azimuth_time,), coord line <u4
    conditions/gcp/{latitude,longitude,height,incidence_angle,slant_range_time}
                                               <f8 coarse grid, coords line/pixel <u4
    conditions/orbit/{position,velocity}       <f8 (azimuth_time, axis=3)

How the pieces fit (and how a processor must combine them):

* Calibration: ``sigma0 = DN**2 / A_sigma**2`` with ``A_sigma`` the ``sigma_nought`` LUT
  bilinearly interpolated in (line, pixel); likewise ``beta_nought`` (constant, as in real
  products) and ``gamma``. The LUTs are consistent: ``A_sigma = A_beta / sqrt(sin(theta))``
  and ``A_gamma = A_beta / sqrt(tan(theta))`` with ``theta`` the GCP incidence angle.
* Thermal noise, in DN² units: ``N(line, pixel) = R(line, pixel) * Z(line)`` where ``R`` is
  ``noise_range_lut`` interpolated bilinearly on its own (line, pixel) grid and ``Z`` is
  ``noise_azimuth_lut`` interpolated linearly in line. Real products split the azimuth LUT
  per sub-swath (``first/last_range_sample``); this sample has one block covering the image.
* ``DN**2 ≈ (sigma0_true * A_sigma**2 + N) * speckle`` with gamma-distributed speckle
  (ENL 4.4, about GRDH's), so noise subtraction can go negative on dark areas and must be
  clipped.

``spec.size`` sets lines and samples (square); ``spec.extra`` may override ``lines``,
``samples``, ``chunks`` (storage chunk, lines × samples), ``polarizations``, ``datatake_id``,
``orbit_state`` and ``timeliness``. ``spec.footprint`` corners are taken in the order
(first line, first pixel), (first line, last pixel), (last line, last pixel),
(last line, first pixel). The image is built lazily with Dask, block by block, each block
seeded from ``(spec.seed, polarisation, block origin)``: the same spec gives the same bytes
whatever the scheduler.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from rspy_batch.processing.samples import SampleSpec

PRODUCT_TYPE = "S01SIWGRD"
#: beta-nought calibration constant (DN units), in the range of real IW GRDH products
BETA_NOUGHT = 473.0
NEAR_INCIDENCE, FAR_INCIDENCE = 30.5, 46.0    # degrees, IW1 near to IW3 far
SWATH_WIDTH_M, GROUND_SPEED_M_S = 250_000.0, 6_800.0
ORBIT_RADIUS_M, ORBIT_SPEED_M_S = 7_071_000.0, 7_600.0
SPEED_OF_LIGHT = 299_792_458.0
ENL = 4.4                                       # equivalent number of looks of GRDH
_LEGACY = re.compile(r"^S1[A-D]_(?P<mode>[A-Z0-9]{2})_GRD._1S..?_\d{8}T\d{6}_\d{8}T\d{6}_"
                     r"\d{6}_(?P<datatake>[0-9A-F]{6})_(?P<crc>[0-9A-F]{4})")
_DESIGNATORS = {"sentinel-1a": "2014-016A", "sentinel-1b": "2016-025A"}
_TIMELINESS = {"NRT-3h": "PT3H", "Fast-24h": "PT24H", "NTC": "P1M"}


@dataclass(frozen=True)
class _Geometry:
    """Image size and the physical quantities every group derives from."""

    lines: int
    samples: int
    start: np.datetime64
    line_interval_s: float
    range_spacing_m: float
    azimuth_spacing_m: float
    corners: np.ndarray        # (4, 2) lon/lat, order documented in the module docstring

    def times(self, lines: np.ndarray) -> np.ndarray:
        return self.start + np.round(lines * self.line_interval_s * 1e9).astype("timedelta64[ns]")

    def ground_range(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.astype(np.float64) * self.range_spacing_m

    def incidence(self, pixels: np.ndarray) -> np.ndarray:
        v = pixels / max(1, self.samples - 1)
        return NEAR_INCIDENCE + (FAR_INCIDENCE - NEAR_INCIDENCE) * v


def make_s1_grd(spec: SampleSpec) -> xr.DataTree:
    """A synthetic dual-polarisation IW GRD EOContainer (lazy image, in-memory metadata)."""
    lines = int(spec.extra.get("lines", spec.size))
    samples = int(spec.extra.get("samples", spec.size))
    if lines < 16 or samples < 16:
        raise ValueError(f"S1 GRD sample needs at least 16×16 pixels, got {lines}×{samples}")
    pols = [str(p).upper() for p in spec.extra.get("polarizations", ("VV", "VH"))]
    chunks = tuple(spec.extra.get("chunks", (min(lines, 1024), min(samples, 8192))))
    geo = _geometry(spec, lines, samples)
    stac = _stac(spec, pols, geo)
    names = _child_names(spec, pols)

    nodes: dict[str, xr.Dataset] = {"/": xr.Dataset()}
    for index, pol in enumerate(pols):
        child = names[pol]
        nodes[f"{child}/measurements"] = _measurements(geo, spec.seed, index, pol, chunks)
        nodes[f"{child}/quality/calibration"] = _calibration(geo)
        nodes[f"{child}/quality/noise_range"] = _noise_range_group(geo)
        nodes[f"{child}/quality/noise_azimuth"] = _noise_azimuth(geo, spec.seed)
        nodes[f"{child}/conditions/gcp"] = _gcp(geo)
        nodes[f"{child}/conditions/orbit"] = _orbit(geo, spec)
    tree = xr.DataTree.from_dict(nodes)
    tree.attrs = {
        "stac_discovery": stac,
        "other_metadata": {"eopf_category": "eocontainer", "title": PRODUCT_TYPE},
    }
    for pol in pols:
        tree[names[pol]].attrs = _child_attrs(stac, names[pol], pol, geo, spec)
    return tree


# -- identity and metadata ---------------------------------------------------------------


def _utc64(value: datetime) -> np.datetime64:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value, "ns")


def _iso(value: np.datetime64) -> str:
    return f"{np.datetime_as_string(value, unit='us')}Z"


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


def _identity(spec: SampleSpec) -> tuple[int, str]:
    """Datatake id and 4-hex product CRC: from the legacy name when it has them."""
    match = _LEGACY.match(spec.name)
    digest = _digest(spec.seed, spec.name)
    datatake = int(spec.extra.get("datatake_id") or
                   (int(match["datatake"], 16) if match else
                    0x40000 + int.from_bytes(digest[:3]) % 0x40000))
    crc = match["crc"] if match else digest[3:5].hex().upper()
    return datatake, crc


def _child_names(spec: SampleSpec, pols: Sequence[str]) -> dict[str, str]:
    datatake, crc = _identity(spec)
    duration = min(9999, max(0, round((spec.stop - spec.start).total_seconds())))
    stem = (f"{PRODUCT_TYPE}_{spec.start:%Y%m%dT%H%M%S}_{duration:04d}_"
            f"{spec.platform[-1:].upper()}{spec.relative_orbit:03d}_{crc}_{datatake:06X}")
    return {pol: f"{stem}_{pol}" for pol in pols}


def _geometry(spec: SampleSpec, lines: int, samples: int) -> _Geometry:
    start, stop = _utc64(spec.start), _utc64(spec.stop)
    duration_s = max(1e-3, float((stop - start) / np.timedelta64(1, "ns")) * 1e-9)
    return _Geometry(
        lines=lines, samples=samples, start=start,
        line_interval_s=duration_s / (lines - 1),
        # the swath keeps its physical extent whatever the sample size: spacings scale
        range_spacing_m=SWATH_WIDTH_M / (samples - 1),
        azimuth_spacing_m=duration_s * GROUND_SPEED_M_S / (lines - 1),
        corners=_corners(spec, duration_s),
    )


def _corners(spec: SampleSpec, duration_s: float) -> np.ndarray:
    ring = (spec.footprint or {}).get("coordinates") or []
    if ring and len(ring[0]) >= 4:
        return np.asarray(ring[0][:4], dtype=np.float64)
    # no footprint given: a seeded scene of the right size, heading roughly polar
    rng = np.random.default_rng(np.frombuffer(_digest("footprint", spec.seed), np.uint32))
    lon0, lat0 = rng.uniform(-10.0, 30.0), rng.uniform(38.0, 60.0)
    dlat = duration_s * GROUND_SPEED_M_S / 111_320.0
    dlon = SWATH_WIDTH_M / (111_320.0 * math.cos(math.radians(lat0)))
    return np.array([[lon0, lat0 + dlat / 2], [lon0 + dlon, lat0 + dlat / 2 + 0.2],
                     [lon0 + dlon, lat0 - dlat / 2 + 0.2], [lon0, lat0 - dlat / 2]])


def _lonlat(geo: _Geometry, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Bilinear lon/lat inside the footprint quadrilateral, shape (len(lines), len(pixels), 2)."""
    u = (lines / (geo.lines - 1))[:, None, None]
    v = (pixels / (geo.samples - 1))[None, :, None]
    c0, c1, c2, c3 = geo.corners
    return (1 - u) * ((1 - v) * c0 + v * c1) + u * ((1 - v) * c3 + v * c2)


def _stac(spec: SampleSpec, pols: Sequence[str], geo: _Geometry) -> dict[str, Any]:
    datatake, _ = _identity(spec)
    ring = [[float(x), float(y)] for x, y in geo.corners] + [[float(c) for c in geo.corners[0]]]
    lons, lats = geo.corners[:, 0], geo.corners[:, 1]
    start, stop = _utc64(spec.start), _utc64(spec.stop)
    timeliness = str(spec.extra.get("timeliness", "Fast-24h"))
    properties: dict[str, Any] = {
        "datetime": _iso(start + (stop - start) // 2),
        "start_datetime": _iso(start),
        "end_datetime": _iso(stop),
        "platform": spec.platform,
        "constellation": "sentinel-1",
        "mission": "copernicus",
        "instruments": ["sar"],
        "product:type": PRODUCT_TYPE,
        "product:timeliness_category": timeliness,
        "processing:level": "L1",
        "eopf:datatake_id": str(datatake),
        "sar:instrument_mode": "IW",
        "sar:beam_ids": "IW",
        "sar:frequency_band": "C",
        "sar:product_type": "GRD",
        "sar:center_frequency": 5.405,
        "sar:polarizations": list(pols),
        "sar:observation_direction": "right",
        "sat:absolute_orbit": spec.absolute_orbit,
        "sat:relative_orbit": spec.relative_orbit,
        "sat:orbit_state": str(spec.extra.get("orbit_state", "descending")),
    }
    if timeliness in _TIMELINESS:
        properties["product:timeliness"] = _TIMELINESS[timeliness]
    if spec.platform in _DESIGNATORS:
        properties["sat:platform_international_designator"] = _DESIGNATORS[spec.platform]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eopf/v1.2.0/schema.json",
            "https://stac-extensions.github.io/product/v1.0.0/schema.json",
            "https://stac-extensions.github.io/sat/v1.1.0/schema.json",
            "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
            "https://stac-extensions.github.io/sar/v1.3.0/schema.json",
        ],
        "id": spec.name,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "bbox": [float(lons.min()), float(lats.min()), float(lons.max()), float(lats.max())],
        "properties": properties,
        "links": [{"rel": "self", "href": "./.zattrs.json", "type": "application/json"}],
        "assets": {},
    }


def _image_information(geo: _Geometry, spec: SampleSpec) -> dict[str, Any]:
    last = geo.times(np.array([geo.lines - 1]))[0]
    mid = geo.incidence(np.array([(geo.samples - 1) / 2]))[0]
    return {
        "range_pixel_spacing": geo.range_spacing_m,
        "azimuth_pixel_spacing": geo.azimuth_spacing_m,
        "azimuth_time_interval": geo.line_interval_s,
        "product_first_line_utc_time": _iso(geo.start)[:-1],
        "product_last_line_utc_time": _iso(last)[:-1],
        "number_of_lines": geo.lines,
        "number_of_samples": geo.samples,
        "slant_range_time": float(_slant_range_time(np.array([NEAR_INCIDENCE]))[0]),
        "incidence_angle_mid_swath": float(mid),
        "pass": str(spec.extra.get("orbit_state", "descending")).upper(),
    }


def _child_attrs(stac: Mapping[str, Any], name: str, pol: str, geo: _Geometry,
                 spec: SampleSpec) -> dict[str, Any]:
    child_stac = {**stac, "id": name,
                  "properties": {**stac["properties"], "sar:polarizations": [pol]}}
    return {
        "stac_discovery": child_stac,
        "other_metadata": {
            "eopf_category": "eoproduct",
            "polarization": pol,
            "image_annotation": {"image_information": _image_information(geo, spec)},
        },
    }


# -- radiometry: the analytic functions the LUTs sample ----------------------------------


def _sigma_gain(geo: _Geometry, pixels: np.ndarray) -> np.ndarray:
    """A_sigma: sigma0 = DN²/A_sigma² ⇔ A_sigma = A_beta / sqrt(sin θ)."""
    return BETA_NOUGHT / np.sqrt(np.sin(np.radians(geo.incidence(pixels))))


def _noise_range_values(geo: _Geometry, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Range noise power in DN²: NESZ around −23 dB, scalloped across the three sub-swaths."""
    v = pixels / (geo.samples - 1)
    u = lines / (geo.lines - 1)
    nesz_db = -24.5 + 2.5 * (0.5 - 0.5 * np.cos(2 * np.pi * 3 * v))[None, :] \
        + 0.3 * np.sin(2 * np.pi * u)[:, None]
    return 10 ** (nesz_db / 10) * _sigma_gain(geo, pixels)[None, :] ** 2


def _noise_az_values(lines: np.ndarray, total: int, seed: int) -> np.ndarray:
    phase = (int.from_bytes(_digest("noise-az", seed)[:2]) / 65536.0) * 2 * np.pi
    return 1.0 + 0.05 * np.sin(2 * np.pi * 5 * lines / max(1, total - 1) + phase)


def _true_sigma0_db(u: np.ndarray, v: np.ndarray, theta: np.ndarray, pol_index: int,
                    seed: int) -> np.ndarray:
    """A smooth scene: fields with incidence fall-off and a lake (size-independent)."""
    rng = np.random.default_rng(np.frombuffer(_digest("scene", seed), np.uint32))
    fx, fy, phase = rng.uniform(1.0, 3.0), rng.uniform(1.0, 3.0), rng.uniform(0, 2 * np.pi)
    land = -8.0 + 2.5 * np.sin(2 * np.pi * (fx * u + fy * v) + phase) \
        + 1.5 * np.cos(2 * np.pi * 7 * u) * np.sin(2 * np.pi * 5 * v) - 0.12 * (theta - 38.0)
    lake = ((u - 0.6) / 0.18) ** 2 + ((v - 0.35) / 0.12) ** 2 < 1.0
    db = np.where(lake, -22.0, land)
    return db - 7.0 * pol_index        # cross-pol ~7 dB below co-pol


def _dn_block(rows: np.ndarray, cols: np.ndarray, *, geo: _Geometry, seed: int,
              pol_index: int) -> np.ndarray:
    """One block of DN: rows (r, 1) and cols (1, c) are global line/pixel indices."""
    r, c = rows[:, 0].astype(np.float64), cols[0, :].astype(np.float64)
    u, v = r[:, None] / (geo.lines - 1), c[None, :] / (geo.samples - 1)
    theta = geo.incidence(c)[None, :]
    sigma0 = 10 ** (_true_sigma0_db(u, v, theta, pol_index, seed) / 10)
    gain2 = _sigma_gain(geo, c)[None, :] ** 2
    noise = _noise_range_values(geo, r, c) * _noise_az_values(r, geo.lines, seed)[:, None]
    rng = np.random.default_rng([seed, pol_index, int(r[0]), int(c[0])])
    speckle = rng.gamma(ENL, 1.0 / ENL, size=sigma0.shape)
    dn = np.clip(np.rint(np.sqrt((sigma0 * gain2 + noise) * speckle)), 1, 65535)
    return np.where(_valid(geo, r, c, seed), dn, 0).astype(np.uint16)


def _valid(geo: _Geometry, r: np.ndarray, c: np.ndarray, seed: int) -> np.ndarray:
    """Inside the no-data frame: a few zero lines top/bottom, ragged zero columns at the sides."""
    edge_lines = max(1, geo.lines // 64)
    base, ragged = max(2, geo.samples // 48), max(1, geo.samples // 64)
    phase = (int.from_bytes(_digest("border", seed)[:2]) / 65536.0) * 2 * np.pi
    u = r / (geo.lines - 1)
    left = base + np.rint(ragged * (0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * u + phase)))
    right = base + np.rint(ragged * (0.5 + 0.5 * np.cos(2 * np.pi * 0.7 * u + phase)))
    rows_ok = (r >= edge_lines) & (r < geo.lines - edge_lines)
    cols_ok = (c[None, :] >= left[:, None]) & (c[None, :] < geo.samples - right[:, None])
    return rows_ok[:, None] & cols_ok


# -- groups ------------------------------------------------------------------------------


def _eopf_attrs(dtype: str, dims: Sequence[str], coords: Sequence[str], *,
                fill_value: Any, units: str = "", short_name: str = "") -> dict[str, Any]:
    return {"dtype": np.dtype(dtype).str, "dimensions": list(dims), "coordinates": list(coords),
            "fill_value": fill_value, "units": units, "short_name": short_name,
            "eopf_is_masked": fill_value is not None}


def _measurements(geo: _Geometry, seed: int, pol_index: int, pol: str,
                  chunks: tuple[int, int]) -> xr.Dataset:
    rows = da.arange(geo.lines, chunks=chunks[0], dtype=np.int64)[:, None]
    cols = da.arange(geo.samples, chunks=chunks[1], dtype=np.int64)[None, :]
    data = da.map_blocks(_dn_block, rows, cols, dtype=np.uint16, geo=geo, seed=seed,
                         pol_index=pol_index, chunks=(rows.chunks[0], cols.chunks[1]))
    line = np.arange(geo.lines, dtype=np.uint32)
    pixel = np.arange(geo.samples, dtype=np.uint32)
    dims = ("azimuth_time", "ground_range")
    grd = xr.DataArray(data, dims=dims, attrs={
        "long_name": "measurement data set for GRD IW",
        "short_name": "grd",
        "units": "digital_counts",
        "polarization": pol,
        "_eopf_attrs": _eopf_attrs("uint16", dims, ["azimuth_time", "ground_range", "line",
                                                    "pixel"], fill_value=0, short_name="grd"),
    })
    grd.encoding = {"dtype": "uint16", "_FillValue": 0}
    return xr.Dataset({"grd": grd}, coords={
        "azimuth_time": ("azimuth_time", geo.times(line.astype(np.float64))),
        "ground_range": ("ground_range", geo.ground_range(pixel), {"units": "m"}),
        "line": ("azimuth_time", line),
        "pixel": ("ground_range", pixel),
    })


def _nodes(total: int, count: int) -> np.ndarray:
    """``count`` increasing full-resolution indices from 0 to ``total - 1`` inclusive."""
    count = max(2, min(total, count))
    return np.unique(np.rint(np.linspace(0, total - 1, count))).astype(np.uint32)


def _range_nodes(total: int, step: int) -> np.ndarray:
    """Regular pixel nodes every ``step`` plus the last pixel, as real calibration vectors."""
    nodes = np.arange(0, total, max(1, step), dtype=np.uint32)
    return nodes if nodes[-1] == total - 1 else np.append(nodes, np.uint32(total - 1))


def _grid_coords(geo: _Geometry, line: np.ndarray, pixel: np.ndarray) -> dict[str, Any]:
    return {
        "azimuth_time": ("azimuth_time", geo.times(line.astype(np.float64))),
        "ground_range": ("ground_range", geo.ground_range(pixel), {"units": "m"}),
        "line": ("azimuth_time", line, {"long_name": "full-resolution image line"}),
        "pixel": ("ground_range", pixel, {"long_name": "full-resolution image pixel"}),
    }


def _lut(values: np.ndarray, name: str, long_name: str) -> xr.DataArray:
    dims = ("azimuth_time", "ground_range")[: values.ndim]
    coords = ["azimuth_time", "line"] + (["ground_range", "pixel"] if values.ndim == 2 else [])
    return xr.DataArray(values.astype(np.float32), dims=dims, attrs={
        "long_name": long_name, "short_name": name,
        "_eopf_attrs": _eopf_attrs("float32", dims, coords, fill_value=None, short_name=name),
    })


def _calibration(geo: _Geometry) -> xr.Dataset:
    line = _nodes(geo.lines, min(27, geo.lines // 600 + 1) if geo.lines >= 2400 else 5)
    pixel = _range_nodes(geo.samples, 40 if geo.samples >= 800 else max(4, geo.samples // 5))
    theta = np.radians(geo.incidence(pixel.astype(np.float64)))
    shape = (line.size, pixel.size)
    ones = np.ones(shape)
    what = ("calibration vector (the values in this vector are aligned with the pixel "
            "vector)")
    return xr.Dataset({
        "sigma_nought": _lut(ones * (BETA_NOUGHT / np.sqrt(np.sin(theta))), "sigma_nought",
                             f"sigma nought {what}"),
        "beta_nought": _lut(ones * BETA_NOUGHT, "beta_nought", f"beta nought {what}"),
        "gamma": _lut(ones * (BETA_NOUGHT / np.sqrt(np.tan(theta))), "gamma", f"gamma {what}"),
        "dn": _lut(ones * BETA_NOUGHT, "dn", f"digital number {what}"),
    }, coords=_grid_coords(geo, line, pixel))


def _noise_range_group(geo: _Geometry) -> xr.Dataset:
    line = _nodes(geo.lines, min(14, geo.lines // 1200 + 1) if geo.lines >= 3600 else 3)
    pixel = _range_nodes(geo.samples, 40 if geo.samples >= 800 else max(3, geo.samples // 7))
    values = _noise_range_values(geo, line.astype(np.float64), pixel.astype(np.float64))
    return xr.Dataset({"noise_range_lut": _lut(
        values, "noise_range_lut",
        "range thermal noise correction vector power values (DN²)")},
        coords=_grid_coords(geo, line, pixel))


def _noise_azimuth(geo: _Geometry, seed: int) -> xr.Dataset:
    line = _nodes(geo.lines, geo.lines // 10 + 1)
    values = _noise_az_values(line.astype(np.float64), geo.lines, seed)
    return xr.Dataset({"noise_azimuth_lut": _lut(
        values, "noise_azimuth_lut",
        "azimuth thermal noise correction vector (dimensionless factor on the range noise)")},
        coords={"azimuth_time": ("azimuth_time", geo.times(line.astype(np.float64))),
                "line": ("azimuth_time", line, {"long_name": "full-resolution image line"})})


def _slant_range_time(theta_deg: np.ndarray) -> np.ndarray:
    """Two-way slant range time over a flat Earth from ~693 km altitude."""
    altitude = ORBIT_RADIUS_M - 6_378_137.0
    return 2 * altitude / (SPEED_OF_LIGHT * np.cos(np.radians(theta_deg)))


def _gcp(geo: _Geometry) -> xr.Dataset:
    line, pixel = _nodes(geo.lines, 10), _nodes(geo.samples, 21)
    lonlat = _lonlat(geo, line.astype(np.float64), pixel.astype(np.float64))
    theta = np.broadcast_to(geo.incidence(pixel.astype(np.float64)), lonlat.shape[:2])
    u = (line / (geo.lines - 1))[:, None]
    v = (pixel / (geo.samples - 1))[None, :]
    height = 120.0 + 80.0 * np.sin(2 * np.pi * u) * np.cos(np.pi * v)
    dims = ("azimuth_time", "ground_range")
    return xr.Dataset({
        "latitude": (dims, lonlat[..., 1], {"units": "degrees_north"}),
        "longitude": (dims, lonlat[..., 0], {"units": "degrees_east"}),
        "height": (dims, height, {"units": "m"}),
        "incidence_angle": (dims, theta.copy(), {"units": "degrees"}),
        "slant_range_time": (dims, _slant_range_time(theta), {"units": "s"}),
    }, coords=_grid_coords(geo, line, pixel))


def _ecef_unit(lon: float, lat: float) -> np.ndarray:
    lo, la = math.radians(lon), math.radians(lat)
    return np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])


def _orbit(geo: _Geometry, spec: SampleSpec) -> xr.Dataset:
    """State vectors every 10 s around the acquisition, on a circular orbit along the scene."""
    c0, c1, c2, c3 = geo.corners
    first, last = _ecef_unit(*((c0 + c1) / 2)), _ecef_unit(*((c3 + c2) / 2))
    centre = _ecef_unit(*geo.corners.mean(axis=0))
    along = (last - first) - np.dot(last - first, centre) * centre
    along /= np.linalg.norm(along)
    start, stop = _utc64(spec.start), _utc64(spec.stop)
    mid = start + (stop - start) // 2
    offsets = np.arange(-30.0, float((stop - start) / np.timedelta64(1, "s")) + 40.0, 10.0)
    times = start + (offsets * 1e9).astype("timedelta64[ns]")
    tau = ((times - mid) / np.timedelta64(1, "ns") * 1e-9)[:, None]
    omega = ORBIT_SPEED_M_S / ORBIT_RADIUS_M
    position = ORBIT_RADIUS_M * (np.cos(omega * tau) * centre + np.sin(omega * tau) * along)
    velocity = ORBIT_SPEED_M_S * (-np.sin(omega * tau) * centre + np.cos(omega * tau) * along)
    dims = ("azimuth_time", "axis")
    return xr.Dataset({
        "position": (dims, position, {"long_name": "position vector", "units": "m"}),
        "velocity": (dims, velocity, {"long_name": "velocity vector", "units": "m/s"}),
    }, coords={"azimuth_time": times, "axis": ["x", "y", "z"]})
