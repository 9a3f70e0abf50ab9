"""``s2-l1c``: Sentinel-2 L1C -> an L2A-*like* product (TOA reflectance, heuristic classes).

What it computes (``eopf-products.md`` §4 "S2 radiometry", §1.5 for the layout):

- **Reflectance.** TOA reflectance ``rho = DN * 1e-4 + offset``, DN 0 = no data. The offset
  is -0.1 for processing baseline >= 04.00 and 0 before (RADIO_ADD_OFFSET); EOPF's CF
  ``add_offset`` already carries it, so the decoded values are used as they are, after
  checking that ``add_offset`` agrees with ``processing:version`` / ``eopf:baseline``
  (integer data without CF attributes is decoded with the baseline's offset).
- **Resampling** between 10/20/60 m (exact factors 2, 3, 6): down = mean of the valid
  pixels of each block (``coarsen(...).mean()``, NaN-skipping, all-invalid -> no data);
  up = nearest (each pixel repeated). Output bands as in an L2A product: r10m b02 b03 b04
  b08; r20m b01-b07 b8a b11 b12; r60m b01-b07 b8a b09 b11 b12, all ``uint16`` with
  ``scale_factor`` 1e-4, ``add_offset`` -0.1, fill 0 (values clipped to 1..65535 DN).
- **Indices** at 10 m: NDVI ``(b08 - b04) / (b08 + b04)``, NDWI ``(b03 - b08) / (b03 + b08)``,
  defined where both reflectances are > 0 (so within (-1, 1)), else no data. Stored as
  ``int16``, ``scale_factor`` 1e-4, ``add_offset`` 0, fill -32768, valid -10000..10000:
  1e-4 steps, half the bytes of float32.
- **Scene classification** ``scl`` at 20 m and 60 m, L2A class codes, from TOA reflectance
  at that resolution, first rule that matches (:data:`THRESHOLDS`)::

      0  no_data          any of b02 b03 b04 b8a b10 b11 missing
      11 snow_or_ice      NDSI (b03-b11)/(b03+b11) > 0.42 and b8a > 0.11 and b03 > 0.25
      9  cloud_high_prob  b02 > 0.35
      8  cloud_medium     b02 > 0.22
      10 thin_cirrus      b10 > 0.012
      6  water            NDWI (b03-b8a)/(b03+b8a) > 0.1 and b8a < 0.15
      4  vegetation       NDVI (b8a-b04)/(b8a+b04) > 0.4
      5  not_vegetated    otherwise

  This is a threshold heuristic on TOA values, **not Sen2Cor** (no cloud shadows, dark
  areas, topography or probabilities from a trained model), and it says so in its
  attributes.
- **Cloud score** ``quality/probability/r20m/cld``: ``round(100 * clip((b02 - 0.15) / 0.30,
  0, 1))``, 0 on snow, fill 101 on no data; ``uint8`` percent, a heuristic as well.

No atmospheric correction is applied: the product type is ``S02MSIL2A`` so that L2A tooling
(xarray-eopf's MSIL2A analysis mode) finds the groups it looks for, but the level is
``L2A-like`` and ``other_metadata`` states that values are TOA.

Everything stays lazy: each output is a Dask graph over the input's storage chunks, and
outputs use the input's storage chunks per resolution.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from rspy_batch.processing.base import Processor, ProductInput
from rspy_batch.processing.product import ProductError, has_node, scaled

L1C_TYPE = "S02MSIL1C"
L2A_TYPE = "S02MSIL2A"
SCALE = 1e-4
OFFSET_PB04 = -0.1
#: reflectance encoding of the output (current EOPF S2 encoding, whatever the input's)
OUT_OFFSET = OFFSET_PB04
REFL_MIN = 1 * SCALE + OUT_OFFSET
REFL_MAX = 65535 * SCALE + OUT_OFFSET
INDEX_SCALE = 1e-4
INDEX_FILL = -32768
CLD_FILL = 101

NATIVE_RES: dict[str, int] = {
    "b01": 60, "b02": 10, "b03": 10, "b04": 10, "b05": 20, "b06": 20, "b07": 20, "b08": 10,
    "b8a": 20, "b09": 60, "b10": 60, "b11": 20, "b12": 20,
}
INPUT_BANDS: dict[int, tuple[str, ...]] = {
    res: tuple(b for b, r in NATIVE_RES.items() if r == res) for res in (10, 20, 60)
}
OUTPUT_BANDS: dict[int, tuple[str, ...]] = {
    10: ("b02", "b03", "b04", "b08"),
    20: ("b01", "b02", "b03", "b04", "b05", "b06", "b07", "b8a", "b11", "b12"),
    60: ("b01", "b02", "b03", "b04", "b05", "b06", "b07", "b8a", "b09", "b11", "b12"),
}
SCL_INPUTS = ("b02", "b03", "b04", "b8a", "b10", "b11")

NO_DATA, VEGETATION, NOT_VEGETATED, WATER = 0, 4, 5, 6
CLOUD_MEDIUM, CLOUD_HIGH, THIN_CIRRUS, SNOW = 8, 9, 10, 11
SCL_MEANINGS: dict[int, str] = {
    0: "no_data", 1: "saturated_or_defective", 2: "dark_area_pixels", 3: "cloud_shadows",
    4: "vegetation", 5: "not_vegetated", 6: "water", 7: "unclassified",
    8: "cloud_medium_probability", 9: "cloud_high_probability", 10: "thin_cirrus",
    11: "snow_or_ice",
}
#: thresholds on TOA reflectance (see the module docstring for the rule order)
THRESHOLDS: dict[str, float] = {
    "snow_ndsi": 0.42, "snow_b8a": 0.11, "snow_b03": 0.25,
    "cloud_high_b02": 0.35, "cloud_medium_b02": 0.22,
    "cirrus_b10": 0.012,
    "water_ndwi": 0.1, "water_b8a": 0.15,
    "vegetation_ndvi": 0.4,
    "cld_b02_low": 0.15, "cld_b02_high": 0.45,
}
HEURISTIC_NOTE = ("heuristic thresholds on TOA reflectance, not Sen2Cor; no atmospheric "
                  "correction applied")
QUICKLOOK_SIDE = 512
#: input STAC properties carried over to the output unchanged
KEPT_PROPERTIES = ("datetime", "start_datetime", "end_datetime", "platform", "constellation",
                   "instruments", "instrument", "gsd", "grid:code", "mgrs:utm_zone",
                   "product:timeliness_category", "product:timeliness",
                   "eopf:instrument_mode", "eopf:datatake_id", "eopf:data_take_id",
                   "eopf:datastrip_id")
KEPT_METADATA = ("horizontal_CRS_name", "horizontal_crs_name", "utm_zone_identification",
                 "mean_sensing_time",
                 "mean_sun_zenith_angle_in_deg_for_all_bands_all_detectors",
                 "mean_sun_azimuth_angle_in_deg_for_all_bands_all_detectors",
                 "reflectance_correction_factor_from_the_sun_earth_distance_variation_"
                 "computed_using_the_acquisition_date", "band_description")


# --- pure per-block functions --------------------------------------------------------------


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a - b) / (a + b)


def scene_classes(b02: np.ndarray, b03: np.ndarray, b04: np.ndarray, b8a: np.ndarray,
                  b10: np.ndarray, b11: np.ndarray) -> np.ndarray:
    """SCL codes (uint8) from TOA reflectances at one resolution; NaN = no data."""
    t = THRESHOLDS
    ndsi, ndwi, ndvi = _nd(b03, b11), _nd(b03, b8a), _nd(b8a, b04)
    rules = [
        (np.isnan(b02) | np.isnan(b03) | np.isnan(b04) | np.isnan(b8a) | np.isnan(b10)
         | np.isnan(b11), NO_DATA),
        ((ndsi > t["snow_ndsi"]) & (b8a > t["snow_b8a"]) & (b03 > t["snow_b03"]), SNOW),
        (b02 > t["cloud_high_b02"], CLOUD_HIGH),
        (b02 > t["cloud_medium_b02"], CLOUD_MEDIUM),
        (b10 > t["cirrus_b10"], THIN_CIRRUS),
        ((ndwi > t["water_ndwi"]) & (b8a < t["water_b8a"]), WATER),
        (ndvi > t["vegetation_ndvi"], VEGETATION),
    ]
    out = np.full(b02.shape, NOT_VEGETATED, dtype=np.uint8)
    done = np.zeros(b02.shape, dtype=bool)
    for condition, code in rules:
        hit = condition & ~done
        out[hit] = code
        done |= hit
    return out


def cloud_score(b02: np.ndarray, scl: np.ndarray) -> np.ndarray:
    """Heuristic cloud percentage (uint8): blue brightness ramp, 0 on snow, 101 on no data."""
    t = THRESHOLDS
    ramp = np.clip((b02 - t["cld_b02_low"]) / (t["cld_b02_high"] - t["cld_b02_low"]), 0, 1)
    score = np.rint(100 * np.nan_to_num(ramp)).astype(np.uint8)
    score[scl == SNOW] = 0
    score[scl == NO_DATA] = CLD_FILL
    return score


def normalized_difference(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """``(a - b) / (a + b)`` where both are > 0, else NaN (lazy)."""
    return xr.where((a > 0) & (b > 0), (a - b) / (a + b), np.nan)


# --- input checks and decoding ------------------------------------------------------------


def baseline_offset(properties: Mapping[str, Any]) -> float | None:
    """Radiometric offset implied by ``processing:version`` / ``eopf:baseline``, if given."""
    text = str(properties.get("processing:version") or properties.get("eopf:baseline") or "")
    match = re.fullmatch(r"N?(\d{1,2})\.?(\d{2})", text.strip())
    if not match:
        return None
    return OFFSET_PB04 if int(match.group(1)) >= 4 else 0.0


def _storage_chunks(var: xr.DataArray) -> tuple[int, int]:
    chunks = var.encoding.get("chunks")
    if chunks:
        return int(chunks[0]), int(chunks[1])
    if var.chunks:
        return int(max(var.chunks[0])), int(max(var.chunks[1]))
    return int(var.shape[0]), int(var.shape[1])


def check_l1c(tree: xr.DataTree) -> dict[str, Any]:
    """The input's STAC properties, after checking it is an S2 L1C product we can read."""
    stac = tree.attrs.get("stac_discovery") or {}
    props = dict(stac.get("properties") or {})
    ptype = props.get("product:type") or props.get("eopf:type")
    if ptype != L1C_TYPE:
        raise ProductError(f"s2-l1c needs a Sentinel-2 L1C product ({L1C_TYPE}); the input's "
                           f"stac_discovery says product:type {ptype!r}")
    shapes = {}
    for res, bands in INPUT_BANDS.items():
        group = f"measurements/reflectance/r{res}m"
        for band in bands:
            if not has_node(tree, f"{group}/{band}"):
                raise ProductError(f"S2 L1C input lacks {group}/{band}")
        var = tree[f"{group}/{bands[0]}"]
        if var.dims != ("y", "x"):
            raise ProductError(f"{group}/{bands[0]} has dims {var.dims}, expected ('y', 'x')")
        shapes[res] = var.shape
    for res in (20, 60):
        factor = res // 10
        if any(n % factor for n in shapes[10]) \
                or shapes[res] != tuple(n // factor for n in shapes[10]):
            raise ProductError(f"r{res}m shape {shapes[res]} is not r10m {shapes[10]} / "
                               f"{factor}")
    return props


def decode(var: xr.DataArray, path: str, expected: float | None) -> xr.DataArray:
    """TOA reflectance of one band (NaN = no data), checked against the baseline offset."""
    if np.issubdtype(var.dtype, np.integer):
        offset = OFFSET_PB04 if expected is None else expected
        return xr.where(var == 0, np.nan, var.astype(np.float64) * SCALE + offset)
    if "scale_factor" not in var.encoding and "add_offset" not in var.encoding:
        raise ProductError(f"{path}: float data without CF scale_factor/add_offset; cannot "
                           f"tell DN from reflectance")
    actual = float(var.encoding.get("add_offset", 0.0))
    if expected is not None and abs(actual - expected) > 1e-9:
        raise ProductError(f"{path}: add_offset {actual} contradicts the processing baseline "
                           f"(expects {expected})")
    return var


# --- resampling ----------------------------------------------------------------------------


def _on_grid(data: da.Array, like: xr.Dataset) -> xr.DataArray:
    return xr.DataArray(data, dims=("y", "x"), coords={"y": like["y"], "x": like["x"]})


def downsample(src: xr.DataArray, factor: int, like: xr.Dataset, chunks: tuple[int, int]
               ) -> xr.DataArray:
    """Block mean of valid pixels, on ``like``'s grid, Dask chunks = ``chunks``."""
    src = src.chunk({"y": chunks[0] * factor, "x": chunks[1] * factor})
    out = src.coarsen(y=factor, x=factor).mean()
    return _on_grid(out.data.rechunk(chunks), like)


def upsample(src: xr.DataArray, factor: int, like: xr.Dataset, chunks: tuple[int, int]
             ) -> xr.DataArray:
    """Nearest neighbour (each pixel repeated ``factor``²), on ``like``'s grid."""
    data = src.data
    if chunks[0] % factor == 0 and chunks[1] % factor == 0:
        data = data.rechunk((chunks[0] // factor, chunks[1] // factor))
    data = da.repeat(da.repeat(data, factor, axis=0), factor, axis=1)
    return _on_grid(data.rechunk(chunks), like)


class _Bands:
    """Decoded input bands, resampled to any of the three grids on demand (memoised)."""

    def __init__(self, tree: xr.DataTree, expected_offset: float | None) -> None:
        self.grids: dict[int, xr.Dataset] = {}
        self.chunks: dict[int, tuple[int, int]] = {}
        self._cache: dict[tuple[str, int], xr.DataArray] = {}
        for res, bands in INPUT_BANDS.items():
            group = f"measurements/reflectance/r{res}m"
            ds = tree[group].to_dataset()
            self.grids[res] = ds
            self.chunks[res] = _storage_chunks(ds[bands[0]])
            for band in bands:
                var = decode(ds[band], f"{group}/{band}", expected_offset)
                self._cache[band, res] = _on_grid(
                    var.data if var.chunks else da.from_array(var.values,
                                                              chunks=self.chunks[res]),
                    ds).chunk({"y": self.chunks[res][0], "x": self.chunks[res][1]})

    def at(self, band: str, res: int) -> xr.DataArray:
        key = (band, res)
        if key not in self._cache:
            native = NATIVE_RES[band]
            src = self.at(band, native)
            if native < res:
                out = downsample(src, res // native, self.grids[res], self.chunks[res])
            else:
                out = upsample(src, native // res, self.grids[res], self.chunks[res])
            self._cache[key] = out
        return self._cache[key]


# --- output variables ---------------------------------------------------------------------


def _reflectance(data: xr.DataArray, band: str, res: int, chunks: tuple[int, int],
                 attrs: Mapping[str, Any]) -> xr.DataArray:
    data = data.clip(REFL_MIN, REFL_MAX)
    data.attrs = {k: v for k, v in attrs.items() if k.startswith("proj:")}
    source = "native" if NATIVE_RES[band] == res else (
        f"block mean of {NATIVE_RES[band]} m" if NATIVE_RES[band] < res
        else f"nearest from {NATIVE_RES[band]} m")
    return scaled(data, scale_factor=SCALE, add_offset=OUT_OFFSET, fill_value=0,
                  chunks=chunks, units="digital_counts",
                  long_name=f"TOA reflectance {band} ({source}); no atmospheric correction",
                  short_name=f"{band}_{res}m", valid_range=(1, 65535))


def _index(data: xr.DataArray, name: str, formula: str, chunks: tuple[int, int]
           ) -> xr.DataArray:
    data.attrs = {"formula": formula,
                  "comment": "from TOA reflectance; no data where either band is <= 0"}
    return scaled(data, scale_factor=INDEX_SCALE, add_offset=0.0, fill_value=INDEX_FILL,
                  dtype="int16", chunks=chunks, units="1", long_name=name,
                  short_name=name.split()[0].lower(), valid_range=(-10000, 10000))


def _scl(bands: _Bands, res: int) -> xr.DataArray:
    inputs = [bands.at(b, res) for b in SCL_INPUTS]
    scl = xr.apply_ufunc(scene_classes, *inputs, dask="parallelized",
                         output_dtypes=[np.uint8])
    scl.attrs = {
        "long_name": "scene classification (heuristic, not Sen2Cor)",
        "flag_values": list(SCL_MEANINGS), "flag_meanings": " ".join(SCL_MEANINGS.values()),
        "comment": HEURISTIC_NOTE, "thresholds": dict(THRESHOLDS),
    }
    scl.encoding = {"dtype": "uint8", "chunks": bands.chunks[res]}
    return scl


def _cld(b02: xr.DataArray, scl: xr.DataArray, chunks: tuple[int, int]) -> xr.DataArray:
    cld = xr.apply_ufunc(cloud_score, b02, scl, dask="parallelized", output_dtypes=[np.uint8])
    cld.attrs = {"long_name": "cloud probability (heuristic, not Sen2Cor)", "units": "percent",
                 "valid_min": 0, "valid_max": 100,
                 "comment": f"round(100*clip((b02-{THRESHOLDS['cld_b02_low']})/"
                            f"({THRESHOLDS['cld_b02_high']}-{THRESHOLDS['cld_b02_low']}),0,1)), "
                            f"0 on snow; {HEURISTIC_NOTE}"}
    cld.encoding = {"dtype": "uint8", "_FillValue": CLD_FILL, "chunks": chunks}
    return cld


def _band_entries(props: Mapping[str, Any]) -> list[dict[str, Any]]:
    kept = set(OUTPUT_BANDS[20]) | set(OUTPUT_BANDS[60])
    return [b for b in props.get("bands") or [] if isinstance(b, Mapping) and b.get("name")
            in kept]


class S2L1CProcessor(Processor):
    """Sentinel-2 L1C -> L2A-like: TOA reflectance at 10/20/60 m, NDVI/NDWI, heuristic SCL."""

    name = "s2-l1c"
    version = "1.0.0"
    #: station product types (PRIP/LTA ``product:type``) of the inputs
    input_types = frozenset({"S2MSI1C"})
    level = "L2A-like"
    product_type = L2A_TYPE
    title = "Sentinel-2 L1C to L2A-like (TOA reflectance, indices, heuristic classes)"

    def run(self, inputs: Sequence[ProductInput], **params: Any) -> xr.DataTree:
        if len(inputs) != 1:
            raise ProductError(f"s2-l1c takes exactly one L1C product, got {len(inputs)}")
        source = inputs[0]
        suffix = ".zip" if any(p.name.endswith(".zip") for p in source.files.values()) else ""
        tree = source.open(suffix)
        props = check_l1c(tree)
        expected = baseline_offset(props)
        bands = _Bands(tree, expected)

        groups: dict[str, xr.Dataset] = {}
        for res, names in OUTPUT_BANDS.items():
            attrs = tree[f"measurements/reflectance/r{res}m/{INPUT_BANDS[res][0]}"].attrs
            groups[f"/measurements/reflectance/r{res}m"] = xr.Dataset({
                band: _reflectance(bands.at(band, res), band, res, bands.chunks[res], attrs)
                for band in names})
        c10 = bands.chunks[10]
        b03, b04, b08 = (bands.at(b, 10) for b in ("b03", "b04", "b08"))
        groups["/measurements/indices/r10m"] = xr.Dataset({
            "ndvi": _index(normalized_difference(b08, b04), "NDVI (normalized difference "
                           "vegetation index)", "(b08 - b04) / (b08 + b04)", c10),
            "ndwi": _index(normalized_difference(b03, b08), "NDWI (normalized difference "
                           "water index)", "(b03 - b08) / (b03 + b08)", c10),
        })
        scl20 = _scl(bands, 20)
        groups["/conditions/mask/l2a_classification/r20m"] = xr.Dataset({"scl": scl20})
        groups["/conditions/mask/l2a_classification/r60m"] = xr.Dataset({"scl": _scl(bands, 60)})
        groups["/quality/probability/r20m"] = xr.Dataset(
            {"cld": _cld(bands.at("b02", 20), scl20, bands.chunks[20])})
        if has_node(tree, "conditions/geometry"):
            groups["/conditions/geometry"] = tree["conditions/geometry"].to_dataset()

        out = xr.DataTree.from_dict(groups)
        out.attrs = {"stac_discovery": self._stac(tree, props),
                     "other_metadata": self._other_metadata(tree, source, props, expected)}
        return out

    def _stac(self, tree: xr.DataTree, props: Mapping[str, Any]) -> dict[str, Any]:
        stac = tree.attrs.get("stac_discovery") or {}
        out_props = {k: v for k, v in props.items()
                     if k in KEPT_PROPERTIES or k.startswith(("sat:", "proj:"))}
        out_props.update({
            "product:type": L2A_TYPE, "eopf:type": L2A_TYPE, "processing:level": self.level,
            "processing:lineage": f"{L1C_TYPE} decoded to TOA reflectance, resampled, NDVI/"
                                  f"NDWI and heuristic classification; no atmospheric "
                                  f"correction",
            "bands": _band_entries(props),
        })
        return {"type": "Feature", "stac_version": stac.get("stac_version", "1.1.0"),
                "stac_extensions": list(stac.get("stac_extensions") or []),
                "geometry": stac.get("geometry"), "bbox": stac.get("bbox"),
                "properties": out_props,
                "links": [{"rel": "self", "href": "./.zattrs.json",
                           "type": "application/json"}],
                "assets": {}}

    @staticmethod
    def _other_metadata(tree: xr.DataTree, source: ProductInput, props: Mapping[str, Any],
                        expected: float | None) -> dict[str, Any]:
        meta_in = tree.attrs.get("other_metadata") or {}
        crs = (meta_in.get("horizontal_CRS_code") or meta_in.get("horizontal_crs_code")
               or props.get("proj:code")
               or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None))
        if crs is None:
            raise ProductError("S2 L1C input has no CRS (other_metadata.horizontal_CRS_code, "
                               "proj:code or proj:epsg)")
        return {
            "eopf_category": "eoproduct",
            "horizontal_CRS_code": crs,
            **{k: meta_in[k] for k in KEPT_METADATA if k in meta_in},
            "reflectance_type": "TOA",
            "atmospheric_correction": "none: measurements/reflectance holds top-of-atmosphere "
                                      "reflectance decoded from the L1C input, not "
                                      "bottom-of-atmosphere (this is not a Sen2Cor L2A)",
            "scene_classification": HEURISTIC_NOTE,
            "scene_classification_thresholds": dict(THRESHOLDS),
            "resampling": "down: mean of valid pixels per block; up: nearest (repeat)",
            "input_product": source.id,
            "input_processing_baseline": props.get("processing:version")
                                         or props.get("eopf:baseline"),
            "input_radiometric_offset": expected,
            "indices_encoding": f"int16, scale_factor {INDEX_SCALE}, add_offset 0, "
                                f"fill {INDEX_FILL}",
        }

    def main_variables(self, tree: xr.DataTree) -> Mapping[str, str]:
        out = {b: f"measurements/reflectance/r10m/{b}" for b in OUTPUT_BANDS[10]}
        out["ndvi"] = "measurements/indices/r10m/ndvi"
        out["ndwi"] = "measurements/indices/r10m/ndwi"
        out["scl"] = "conditions/mask/l2a_classification/r20m/scl"
        return out

    def quicklook(self, tree: xr.DataTree) -> np.ndarray | None:
        """True colour (b04, b03, b02), TOA 0..0.3 stretched to 0..255, <= 512 px a side."""
        group = tree["measurements/reflectance/r10m"]
        step = max(1, math.ceil(max(group["b04"].shape) / QUICKLOOK_SIDE))
        planes = []
        for band in ("b04", "b03", "b02"):
            rho = np.asarray(group[band][::step, ::step].values, dtype=np.float64)
            planes.append(np.rint(np.clip(np.nan_to_num(rho) / 0.3, 0, 1) * 255))
        return np.stack(planes, axis=-1).astype(np.uint8)
