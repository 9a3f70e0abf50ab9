"""``s1-grd``: Sentinel-1 GRD digital numbers -> calibrated, denoised, multilooked sigma0.

Per polarisation sub-product of the input EOContainer (``eopf-products.md`` §4 "S1 GRD"),
for every full-resolution pixel (line ``l``, pixel ``p``)::

    A(l, p)  = quality/calibration/sigma_nought, bilinear in (line, pixel) from its sparse grid
    N(l, p)  = R(l, p) * Z(l)
               R = quality/noise_range/noise_range_lut, bilinear on its own (line, pixel) grid
               Z = quality/noise_azimuth/noise_azimuth_lut, linear in line (1 if absent)
    sigma0   = max(DN² - N, 0) / A²          NaN where DN is 0 (no data) or masked

then ``k × k`` multilook in linear intensity (``coarsen(azimuth_time=k, ground_range=k,
boundary="trim")``, a plain mean: a look window with any no-data pixel is no data, and the
last ``lines % k`` / ``samples % k`` are dropped) and ``sigma0_db = 10·log10(max(sigma0,
1e-10))``. Interpolation is clamped at the outermost LUT nodes (``np.interp`` semantics).
The LUT ``line``/``pixel`` coordinates give each node's full-resolution row and column.

What it does **not** do: no terrain correction or geocoding (the output stays in the input's
radar geometry, ``azimuth_time`` × ``ground_range``; ``conditions/gcp`` is carried over for
coarse location), no radiometric terrain flattening (gamma0 RTC needs a DEM), no speckle
filter beyond the multilook, no per-sub-swath azimuth noise blocks (a 2-D azimuth LUT is
refused), no border-noise removal beyond masking DN 0.

Output (a custom product type ``S01SIWSG0``, EOPF naming, not an ESA type)::

    measurements/<pol>/sigma0_db   int16, scale_factor 0.01 dB, fill -32768 (±327 dB range)
    measurements/<pol>/sigma0      float32 linear multilooked sigma0, NaN fill (for averaging,
                                   which must happen in linear space)
    conditions/gcp                 the input's geolocation grid (first polarisation)

``<pol>`` is the lower-case polarisation (``vv``, ``vh``, ``hh``, ``hv``). Coordinates
``azimuth_time``/``ground_range`` are the look-window means; ``line``/``pixel`` are the
look centres in full-resolution image units (to relate to the GCP grid).

Everything full-size is lazy: the input is rechunked to ``block`` × ``block`` pixels
(rounded to a multiple of ``k``), sigma0 is one ``apply_ufunc`` per block with the (small,
loaded) LUTs, and the multilooked output has ``block/k`` square storage chunks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from rspy_batch.errors import ConfigError
from rspy_batch.processing.base import Processor, ProductInput, open_single_input
from rspy_batch.processing.product import ProductError, scaled

GRD_TYPES = frozenset({"S01SIWGRD", "S01SEWGRD"})
OUTPUT_TYPE = "S01SIWSG0"
POLARISATION = re.compile(r"(?:^|_)(VV|VH|HH|HV)(?:_|$)")
DB_FLOOR = 1e-10
DB_SCALE = 0.01
DB_FILL = -32768
QUICKLOOK_SIDE = 512
FORMULA = ("sigma0 = max(DN^2 - N, 0) / A_sigma^2, N = noise_range_lut x noise_azimuth_lut; "
           "multilook k x k mean (linear); sigma0_db = 10 log10(max(sigma0, 1e-10))")
DIMS = ("azimuth_time", "ground_range")


@dataclass(frozen=True)
class GridLut:
    """A LUT on a rectilinear grid of full-resolution (line, pixel) nodes."""

    values: np.ndarray         # (len(lines), len(pixels)), or (len(lines),) for azimuth LUTs
    lines: np.ndarray
    pixels: np.ndarray | None = None


@dataclass(frozen=True)
class Luts:
    """What calibrating one polarisation needs; small enough to ship with every task."""

    sigma: GridLut
    noise_range: GridLut
    noise_azimuth: GridLut | None


def axis_weights(nodes: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left node index and right-node weight of linear interpolation, clamped at the ends."""
    nodes = np.asarray(nodes, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    left = np.clip(np.searchsorted(nodes, targets, side="right") - 1, 0, nodes.size - 2)
    weight = (targets - nodes[left]) / (nodes[left + 1] - nodes[left])
    return left, np.clip(weight, 0.0, 1.0)


def interp_lines(lut: GridLut, lines: np.ndarray) -> np.ndarray:
    """A 1-D LUT over lines, at ``lines``."""
    i, w = axis_weights(lut.lines, lines)
    values = lut.values.astype(np.float64)
    return values[i] * (1 - w) + values[i + 1] * w


def bilinear(lut: GridLut, lines: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """A 2-D LUT at every (line, pixel) of ``lines`` × ``pixels``: pixels first, then lines
    (separable, so the result is exact bilinear interpolation on the node rectangle)."""
    assert lut.pixels is not None
    j, wj = axis_weights(lut.pixels, pixels)
    values = lut.values.astype(np.float64)
    along = values[:, j] * (1 - wj) + values[:, j + 1] * wj
    i, wi = axis_weights(lut.lines, lines)
    return along[i] * (1 - wi)[:, None] + along[i + 1] * wi[:, None]


def sigma0_block(dn: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, luts: Luts
                 ) -> np.ndarray:
    """Calibrated, noise-subtracted sigma0 of one block; ``rows``/``cols`` are its global
    full-resolution line/pixel indices (any shape that ravels to the block's axes)."""
    lines = np.ravel(rows).astype(np.float64)
    pixels = np.ravel(cols).astype(np.float64)
    dn = np.asarray(dn, dtype=np.float64)
    gain = bilinear(luts.sigma, lines, pixels)
    noise = bilinear(luts.noise_range, lines, pixels)
    if luts.noise_azimuth is not None:
        noise *= interp_lines(luts.noise_azimuth, lines)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma0 = np.maximum(dn * dn - noise, 0.0) / (gain * gain)
    valid = np.isfinite(dn) & (dn != 0)
    return np.where(valid, sigma0, np.nan).astype(np.float32)


def calibrate(grd: xr.DataArray, luts: Luts, *, block: int) -> xr.DataArray:
    """Full-resolution sigma0 of ``grd`` (azimuth_time, ground_range), lazily, per block."""
    bare = xr.DataArray(grd.data if isinstance(grd.data, da.Array) else da.from_array(grd.data),
                        dims=DIMS)
    bare = bare.chunk({DIMS[0]: block, DIMS[1]: block})
    n_lines, n_pixels = bare.shape
    assert bare.chunks is not None
    rows = xr.DataArray(da.arange(n_lines, chunks=bare.chunks[0]), dims=DIMS[0])
    cols = xr.DataArray(da.arange(n_pixels, chunks=bare.chunks[1]), dims=DIMS[1])
    sigma0 = xr.apply_ufunc(sigma0_block, bare, rows, cols, kwargs={"luts": luts},
                            dask="parallelized", output_dtypes=[np.float32])
    coords: dict[str, Any] = {
        "line": (DIMS[0], np.arange(n_lines, dtype=np.float64)),
        "pixel": (DIMS[1], np.arange(n_pixels, dtype=np.float64)),
    }
    for dim in DIMS:
        if dim in grd.indexes:
            coords[dim] = (dim, grd[dim].values, grd[dim].attrs)
    return sigma0.assign_coords(coords)


def average_looks(sigma0: xr.DataArray, k: int) -> xr.DataArray:
    """k × k mean in linear space; any NaN in a window makes the look NaN."""
    if k == 1:
        return sigma0
    # np.mean, not .mean(): it propagates NaN, and coarsen's skipna is broken in xarray 2026.9
    return sigma0.coarsen({DIMS[0]: k, DIMS[1]: k}, boundary="trim").reduce(np.mean)


def to_db(sigma0: xr.DataArray) -> xr.DataArray:
    """10·log10(max(sigma0, 1e-10)); NaN stays NaN."""
    return 10.0 * np.log10(sigma0.clip(min=DB_FLOOR))


def _positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"s1-grd: parameter {name} must be an integer, got {value!r}") \
            from None
    if number < 1:
        raise ConfigError(f"s1-grd: parameter {name} must be >= 1, got {number}")
    return number


def _group(tree: xr.DataTree, path: str, product: str) -> xr.Dataset:
    try:
        return tree[path].to_dataset()
    except KeyError:
        raise ProductError(f"input {product}: no group {path}") from None


def _grid_lut(ds: xr.Dataset, name: str, where: str, product: str, *,
              two_d: bool) -> GridLut:
    """A LUT and its node coordinates, loaded (LUTs are small), checked."""
    if name not in ds:
        raise ProductError(f"input {product}: no variable {where}/{name}")
    var = ds[name]
    want = DIMS if two_d else DIMS[:1]
    if var.dims != want:
        raise ProductError(f"input {product}: {where}/{name} has dims {var.dims}, "
                           f"expected {want}")
    axes = ("line", "pixel") if two_d else ("line",)
    missing = [c for c in axes if c not in ds.coords]
    if missing:
        raise ProductError(f"input {product}: {where} lacks the {'/'.join(missing)} "
                           "coordinate(s) that place its nodes on the image")
    nodes = [np.asarray(ds[c].values, dtype=np.float64) for c in axes]
    for axis, values in zip(axes, nodes, strict=True):
        if values.size < 2 or np.any(np.diff(values) <= 0):
            raise ProductError(f"input {product}: {where}/{axis} must hold at least two "
                               "strictly increasing nodes")
    return GridLut(np.asarray(var.values, dtype=np.float64), nodes[0],
                   nodes[1] if two_d else None)


def read_luts(product: xr.DataTree, name: str) -> tuple[Luts, list[str]]:
    """The calibration and noise LUTs of one polarisation sub-product, and notes on them."""
    notes = []
    sigma = _grid_lut(_group(product, "quality/calibration", name), "sigma_nought",
                      "quality/calibration", name, two_d=True)
    noise_range = _grid_lut(_group(product, "quality/noise_range", name), "noise_range_lut",
                            "quality/noise_range", name, two_d=True)
    try:
        azimuth_group = product["quality/noise_azimuth"].to_dataset()
    except KeyError:
        azimuth_group = None
    if azimuth_group is None or "noise_azimuth_lut" not in azimuth_group:
        noise_azimuth = None
        notes.append("no quality/noise_azimuth/noise_azimuth_lut: azimuth noise factor 1")
    else:
        noise_azimuth = _grid_lut(azimuth_group, "noise_azimuth_lut", "quality/noise_azimuth",
                                  name, two_d=False)
    if not np.all(sigma.values > 0):
        raise ProductError(f"input {name}: quality/calibration/sigma_nought has values <= 0")
    return Luts(sigma, noise_range, noise_azimuth), notes


def polarisations(tree: xr.DataTree) -> dict[str, str]:
    """Polarisation -> child group name, for children holding ``measurements/grd``."""
    found: dict[str, str] = {}
    for child_name, child in tree.children.items():
        match = POLARISATION.search(child_name)
        if match and "measurements" in child.children \
                and "grd" in child["measurements"].data_vars:
            found.setdefault(match.group(1), child_name)
    return found


def _footprint(stac: Mapping[str, Any], gcp: xr.Dataset) -> tuple[dict, list[float]]:
    """The input's geometry, or the GCP grid's outline when the input has none."""
    if stac.get("geometry") and stac.get("bbox"):
        return dict(stac["geometry"]), list(stac["bbox"])
    lat, lon = gcp["latitude"].values, gcp["longitude"].values
    corners = [(0, 0), (0, -1), (-1, -1), (-1, 0), (0, 0)]
    ring = [[float(lon[i, j]), float(lat[i, j])] for i, j in corners]
    return ({"type": "Polygon", "coordinates": [ring]},
            [float(np.nanmin(lon)), float(np.nanmin(lat)),
             float(np.nanmax(lon)), float(np.nanmax(lat))])


class S1GrdProcessor(Processor):
    """S1 GRD -> sigma0 (dB) in radar geometry (module docstring has the details)."""

    name = "s1-grd"
    version = "1.0.0"
    #: station product types (PRIP/LTA ``product:type``) of the inputs
    input_types = frozenset({"IW_GRDH_1S", "EW_GRDH_1S", "IW_GRDM_1S", "EW_GRDM_1S"})
    level = "L1-sigma0"
    product_type = OUTPUT_TYPE
    title = "Sentinel-1 GRD calibrated, thermal-noise-corrected, multilooked sigma0 " \
            "(radar geometry, no terrain correction)"
    #: ``multilook``: look window side (pixels, both axes); ``block``: processing block side
    parameters: Mapping[str, Any] = {"multilook": 4, "block": 2048}

    def run(self, inputs: Sequence[ProductInput], multilook: Any = 4, block: Any = 2048,
            **params: Any) -> xr.DataTree:
        if params:
            raise ConfigError(f"{self.name}: unknown parameter(s) {sorted(params)} "
                              f"(known: {', '.join(self.parameters)})")
        k = _positive_int("multilook", multilook)
        side = max(k, _positive_int("block", block) // k * k)
        source, tree, props = open_single_input(self.name, inputs, GRD_TYPES, "S1 GRD")
        ptype = props.get("product:type") or props.get("eopf:type")
        stac = dict(tree.attrs.get("stac_discovery") or {})
        pols = polarisations(tree)
        if not pols:
            raise ProductError(f"input {source.id}: no polarisation sub-product "
                               "(<name>_VV|VH|HH|HV) with measurements/grd")

        groups: dict[str, xr.Dataset] = {}
        per_pol: dict[str, dict[str, Any]] = {}
        for pol, child_name in sorted(pols.items(), key=lambda kv: (kv[0] != "VV", kv[0])):
            child = tree[child_name]
            luts, notes = read_luts(child, child_name)
            grd = child["measurements/grd"]
            if grd.dims != DIMS:
                raise ProductError(f"input {child_name}: measurements/grd has dims {grd.dims}, "
                                   f"expected {DIMS}")
            sigma0 = average_looks(calibrate(grd, luts, block=side), k)
            chunks = (side // k, side // k)
            groups[f"measurements/{pol.lower()}"] = self._outputs(sigma0, pol, chunks)
            per_pol[pol] = {"child": child_name, "notes": notes,
                            "info": self._image_information(child, k, sigma0)}

        # geometry is the same for every polarisation: the first one's GCP grid serves all
        first = per_pol[next(iter(per_pol))]["child"]
        gcp = _group(tree[first], "conditions/gcp", first)
        geometry, bbox = _footprint(stac, gcp)
        nodes: dict[str, xr.Dataset] = {
            "/": xr.Dataset(attrs={
                "stac_discovery": self._stac(stac, props, geometry, bbox, per_pol),
                "other_metadata": self._other_metadata(source.id, ptype, per_pol, k, side),
            }),
            **groups,
            "conditions/gcp": gcp,
        }
        out = xr.DataTree.from_dict(nodes)
        for pol, info in per_pol.items():
            out[f"measurements/{pol.lower()}"].attrs = {"other_metadata": {
                "polarization": pol,
                "source_sub_product": info["child"],
                "image_annotation": {"image_information": info["info"]},
                "notes": info["notes"],
            }}
        return out

    @staticmethod
    def _outputs(sigma0: xr.DataArray, pol: str, chunks: tuple[int, int]) -> xr.Dataset:
        # rechunk the data only: coordinates stay small in-memory arrays (one storage chunk)
        sigma0 = sigma0.copy(data=sigma0.data.rechunk(chunks))
        db = scaled(to_db(sigma0), scale_factor=DB_SCALE, add_offset=0.0, fill_value=DB_FILL,
                    dtype="int16", chunks=chunks, units="dB",
                    long_name=f"sigma nought {pol}, calibrated, thermal noise removed, "
                              "multilooked, in decibels (radar geometry)",
                    short_name=f"sigma0_db_{pol.lower()}")
        linear = sigma0.copy(deep=False)
        linear.attrs = {
            "units": "1",
            "long_name": f"sigma nought {pol}, calibrated, thermal noise removed, "
                         "multilooked, linear (radar geometry)",
            "_eopf_attrs": {"coordinates": [str(c) for c in sigma0.coords],
                            "dimensions": list(DIMS), "dtype": "<f4", "fill_value": "NaN",
                            "units": "1", "eopf_is_masked": True,
                            "short_name": f"sigma0_{pol.lower()}"},
        }
        linear.encoding = {"dtype": "float32", "_FillValue": np.float32(np.nan),
                           "chunks": chunks}
        return xr.Dataset({"sigma0_db": db, "sigma0": linear})

    @staticmethod
    def _image_information(child: xr.DataTree, k: int, looks: xr.DataArray
                           ) -> dict[str, Any]:
        """The input's image information, restated for the multilooked grid ``looks``."""
        info = dict(((child.attrs.get("other_metadata") or {}).get("image_annotation") or {})
                    .get("image_information") or {})
        for key in ("range_pixel_spacing", "azimuth_pixel_spacing", "azimuth_time_interval"):
            if isinstance(info.get(key), int | float):
                info[key] = float(info[key]) * k
        info["number_of_lines"], info["number_of_samples"] = (int(n) for n in looks.shape)
        times = looks.indexes.get(DIMS[0])
        if times is not None and np.issubdtype(times.dtype, np.datetime64) and len(times):
            # a look's time is the mean of its lines' times
            first, last = times.values[0], times.values[-1]
            info["product_first_line_utc_time"] = np.datetime_as_string(first, unit="us")
            info["product_last_line_utc_time"] = np.datetime_as_string(last, unit="us")
        return info

    def _stac(self, source: Mapping[str, Any], props: Mapping[str, Any], geometry: dict,
              bbox: list[float], per_pol: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        pols = list(per_pol)
        kept = {key: value for key, value in props.items()
                if key in {"datetime", "start_datetime", "end_datetime", "platform",
                           "constellation", "mission", "instruments", "eopf:datatake_id",
                           "product:timeliness", "product:timeliness_category"}
                or key.startswith(("sat:", "sar:"))}
        kept.setdefault("datetime", props.get("start_datetime"))
        info = per_pol[pols[0]]["info"]
        kept.update({
            "product:type": self.product_type,
            "processing:level": self.level,
            "sar:polarizations": pols,
            "sar:instrument_mode": props.get("sar:instrument_mode", "IW"),
            "sar:frequency_band": props.get("sar:frequency_band", "C"),
            # still ground-range detected imagery, now calibrated and multilooked
            "sar:product_type": props.get("sar:product_type", "GRD"),
        })
        for stac_key, info_key in (("sar:pixel_spacing_range", "range_pixel_spacing"),
                                   ("sar:pixel_spacing_azimuth", "azimuth_pixel_spacing")):
            if isinstance(info.get(info_key), float):
                kept[stac_key] = info[info_key]
        return {
            "type": "Feature",
            "stac_version": source.get("stac_version", "1.1.0"),
            "stac_extensions": list(source.get("stac_extensions") or []),
            "geometry": geometry,
            "bbox": bbox,
            "properties": kept,
        }

    def _other_metadata(self, input_id: str, input_type: str, per_pol: Mapping[str, Any],
                        k: int, side: int) -> dict[str, Any]:
        return {
            "eopf_category": "eoproduct",
            "formula": FORMULA,
            "input_product": input_id,
            "input_product_type": input_type,
            "source_sub_products": {pol: info["child"] for pol, info in per_pol.items()},
            "calibration": "quality/calibration/sigma_nought, bilinear in (line, pixel)",
            "thermal_noise_removal": "quality/noise_range/noise_range_lut (bilinear in "
                                     "(line, pixel)) x quality/noise_azimuth/noise_azimuth_lut "
                                     "(linear in line); DN^2 - N clipped at 0",
            "multilook": {"azimuth": k, "range": k, "space": "linear intensity",
                          "boundary": "trim", "nodata": "any no-data pixel in the window"},
            "db": {"floor": DB_FLOOR, "encoding": {"dtype": "int16", "scale_factor": DB_SCALE,
                                                   "add_offset": 0.0, "fill_value": DB_FILL}},
            "nodata": "DN 0 in measurements/grd",
            "processing_block": side,
            "geometry": "radar geometry (azimuth_time, ground_range) of the input GRD; "
                        "conditions/gcp locates it coarsely",
            "corrections_not_applied": ["terrain correction / geocoding",
                                        "radiometric terrain flattening",
                                        "speckle filtering", "border noise removal"],
            "terrain_correction": "none",
        }

    def main_variables(self, tree: xr.DataTree) -> Mapping[str, str]:
        if "measurements" not in tree.children:
            return {}
        return {f"sigma0_db_{pol}": f"measurements/{pol}/sigma0_db"
                for pol, node in sorted(tree["measurements"].children.items())
                if "sigma0_db" in node.data_vars}

    def quicklook(self, tree: xr.DataTree) -> np.ndarray | None:
        """VV (else the first polarisation) dB in grey, <= 512 px, 2-98 % stretch."""
        variables = self.main_variables(tree)
        if not variables:
            return None
        path = variables.get("sigma0_db_vv") or next(iter(variables.values()))
        db = tree[path]
        step = max(1, math.ceil(max(db.shape) / QUICKLOOK_SIDE))
        image = db.isel({DIMS[0]: slice(None, None, step),
                         DIMS[1]: slice(None, None, step)}).values.astype(np.float64)
        finite = image[np.isfinite(image)]
        if finite.size == 0:
            return np.zeros(image.shape, dtype=np.uint8)
        low, high = np.percentile(finite, [2, 98])
        scaled_image = (image - low) / max(high - low, 1e-6)
        out = np.round(1 + 254 * np.clip(scaled_image, 0.0, 1.0))
        return np.where(np.isfinite(image), out, 0).astype(np.uint8)
