"""``s3-olci``: Sentinel-3 OLCI L1 radiances -> top-of-atmosphere reflectance.

Per band and pixel (``eopf-products.md`` §4 "S3 OLCI")::

    rho_TOA = pi * L / (F0 * cos(SZA))

- ``L``: the decoded ``measurements/oaNN_radiance`` (CF scale/offset, fill -> NaN);
- ``F0``: ``conditions/instrument/solar_flux[band, detector_index]``, looked up per pixel
  with ``conditions/image/detector_index``; it is already corrected for the Sun-Earth
  distance of the acquisition day, so no extra factor is applied;
- ``SZA``: ``conditions/geometry/sza`` bilinearly interpolated from the tie-point grid to
  every pixel. Tie point ``(i, j)`` sits on pixel ``(i * al, j * ac)`` with the legacy
  ``al_subsampling_factor`` / ``ac_subsampling_factor`` (EFR: 1 and 64), read from the
  variable attributes or, failing that, inferred from the grid shape when exact.

This is a radiometric conversion only: no atmospheric, gaseous or smile correction, hence
the ``L1-TOA-reflectance`` level and a custom product type ``S03OLCRFL`` (EOPF naming,
not an ESA type). Pixels with a fill radiance, a flag from ``mask_flags`` (default
``invalid``), no usable detector or the Sun at or below the horizon become fill. Output
``measurements/oaNN_reflectance`` is ``uint16`` with ``scale_factor`` 1e-4, ``add_offset``
0 and fill 65535 (0..6.5534; anything outside is not representable and written as fill),
with the input's latitude/longitude/time_stamp coordinates; ``quality/quality_flags`` and
the tie-point ``conditions/geometry`` are carried over unchanged.

Everything full-size stays lazy: SZA is built per Dask block from the (small, loaded)
tie-point grid, and the reflectance is one ``apply_ufunc`` per band over the input's storage
chunks, which are also the output's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from rspy_batch.processing.base import Processor, ProductInput, open_single_input
from rspy_batch.processing.product import ProductError, scaled

OLCI_L1_TYPES = frozenset({"S03OLCEFR", "S03OLCERR"})
OUTPUT_TYPE = "S03OLCRFL"
RADIANCE = re.compile(r"^oa(\d{2})_radiance$")
REFLECTANCE_SCALE = 1e-4
REFLECTANCE_FILL = 65535
FORMULA = "rho_toa = pi * L / (F0[band, detector_index] * cos(SZA))"
#: (red, green, blue) of the quicklook, and the bands worth an asset of their own
RGB_BANDS = ("oa08", "oa06", "oa04")
MAIN_BANDS = ("oa04", "oa06", "oa08", "oa17")
QUICKLOOK_SIDE = 512


def _axis_weights(pos: np.ndarray, step: int, n_tie: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left/right tie-point indices and the right one's weight for pixel positions ``pos``."""
    x = np.asarray(pos, dtype=np.float64) / step
    i0 = np.clip(np.floor(x).astype(np.intp), 0, max(n_tie - 2, 0))
    i1 = np.minimum(i0 + 1, n_tie - 1)
    return i0, i1, x - i0


def interpolate_tie_points(grid: np.ndarray, rows: np.ndarray, columns: np.ndarray, *,
                           al: int, ac: int) -> np.ndarray:
    """Bilinear values of a tie-point ``grid`` at image pixels ``rows`` x ``columns``.

    Rows first, so only the tie rows a block needs are touched (a full-height EFR grid has
    one tie row per image row).
    """
    r0, r1, rw = _axis_weights(rows, al, grid.shape[0])
    c0, c1, cw = _axis_weights(columns, ac, grid.shape[1])
    along = grid[r0] * (1 - rw)[:, None] + grid[r1] * rw[:, None]
    return along[:, c0] * (1 - cw) + along[:, c1] * cw


def subsampling(tie: xr.DataArray, image_shape: tuple[int, int]) -> tuple[int, int]:
    """(al, ac): rows and columns of image per tie-point step."""
    steps = []
    for axis, key in ((0, "al_subsampling_factor"), (1, "ac_subsampling_factor")):
        n_img, n_tie = image_shape[axis], tie.shape[axis]
        if key in tie.attrs:
            step = int(tie.attrs[key])
        elif n_tie > 1 and (n_img - 1) % (n_tie - 1) == 0:
            step = (n_img - 1) // (n_tie - 1)
        elif n_tie == n_img:
            step = 1
        else:
            raise ProductError(f"tie-point grid {tie.shape} vs image {image_shape}: no "
                               f"{key} attribute and no exact step along {tie.dims[axis]}")
        if step < 1 or (n_tie - 1) * step < n_img - 1:
            raise ProductError(f"tie-point grid {tie.shape} with {key}={step} does not cover "
                               f"the image {image_shape}")
        steps.append(step)
    return steps[0], steps[1]


def toa_reflectance(radiance: np.ndarray, detector: np.ndarray, sza: np.ndarray,
                    flags: np.ndarray, *, solar_flux: np.ndarray,
                    flag_mask: int) -> np.ndarray:
    """Per-pixel TOA reflectance of one band; NaN where it cannot be computed.

    ``solar_flux`` is the band's row of the (bands, detectors) table.
    """
    det = np.asarray(detector)
    usable = np.isfinite(det) & (det >= 0) & (det < solar_flux.shape[0])
    f0 = np.where(usable, solar_flux[np.where(usable, det, 0).astype(np.intp)], np.nan)
    cos_sza = np.cos(np.deg2rad(sza))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.pi * radiance / (f0 * cos_sza)
    raw_flags = np.asarray(flags)
    if raw_flags.dtype.kind == "f":  # flags stored with a fill value decode to float
        raw_flags = np.where(np.isfinite(raw_flags), raw_flags, 0)
    flagged = (raw_flags.astype(np.uint64) & np.uint64(flag_mask)) != 0
    representable = (rho >= 0) & (rho <= (REFLECTANCE_FILL - 1) * REFLECTANCE_SCALE)
    return np.where(~flagged & (cos_sza > 0) & representable, rho, np.nan)


def flag_mask(flags: xr.DataArray, names: Sequence[str]) -> int:
    """OR of the masks of ``names`` per the variable's ``flag_masks``/``flag_meanings``."""
    meanings = str(flags.attrs.get("flag_meanings", "")).split()
    masks = [int(m) for m in np.atleast_1d(flags.attrs.get("flag_masks", []))]
    table = dict(zip(meanings, masks, strict=False))
    missing = [n for n in names if n not in table]
    if missing:
        raise ProductError(f"quality_flags does not define {missing} "
                           f"(defined: {', '.join(meanings) or 'none'})")
    out = 0
    for name in names:
        out |= table[name]
    return out


def _names(value: Any) -> list[str]:
    """A parameter given as a list or as a comma-separated string (the CLI's ``k=v``)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(i).strip() for i in items if str(i).strip()]


def _node(tree: xr.DataTree, path: str, product: str) -> xr.Dataset:
    try:
        return tree[path].to_dataset()
    except KeyError:
        raise ProductError(f"input {product}: no group {path}") from None


def _variable(ds: xr.Dataset, name: str, path: str, product: str) -> xr.DataArray:
    if name not in ds:
        raise ProductError(f"input {product}: no variable {path}/{name}")
    return ds[name]


def _bare(var: xr.DataArray, chunks: tuple[int, ...]) -> xr.DataArray:
    """``var``'s data without coordinates, on the image's storage chunks.

    Computing on bare arrays keeps xarray from comparing (and so computing) the
    coordinates each input group carries, and from rechunking the ones we keep.
    """
    data = var.data if isinstance(var.data, da.Array) else da.from_array(var.data)
    return xr.DataArray(data.rechunk(chunks), dims=var.dims)


def _chunks_of(var: xr.DataArray) -> tuple[int, ...]:
    """Storage chunks of an opened variable (its Dask chunks are those)."""
    if "chunks" in var.encoding:
        return tuple(int(c) for c in var.encoding["chunks"])
    if var.chunks is not None:
        return tuple(max(c) for c in var.chunks)
    return var.shape


class S3OlciProcessor(Processor):
    """OLCI EFR/ERR radiance to TOA reflectance (module docstring has the details)."""

    name = "s3-olci"
    version = "1.0.0"
    #: station product types (PRIP/LTA ``product:type``) of the inputs
    input_types = frozenset({"OL_1_EFR___", "OL_1_ERR___"})
    level = "L1-TOA-reflectance"
    product_type = OUTPUT_TYPE
    title = "Sentinel-3 OLCI top-of-atmosphere reflectance"
    #: ``bands``: "all" or e.g. "oa04,oa06"; ``mask_flags``: quality flags that blank pixels
    parameters: Mapping[str, Any] = {"bands": "all", "mask_flags": "invalid"}

    def run(self, inputs: Sequence[ProductInput], **params: Any) -> xr.DataTree:
        source, tree, props = open_single_input(self.name, inputs, OLCI_L1_TYPES, "OLCI L1")
        stac = dict(tree.attrs.get("stac_discovery") or {})

        meas = _node(tree, "measurements", source.id)
        available = {f"oa{m.group(1)}": str(v) for v in meas.data_vars
                     if (m := RADIANCE.match(str(v)))}
        wanted = sorted(available) if params.get("bands", "all") == "all" \
            else _names(params["bands"])
        unknown = [b for b in wanted if b not in available]
        if not wanted or unknown:
            raise ProductError(f"input {source.id}: bands {unknown or wanted} not among "
                               f"{', '.join(sorted(available)) or 'no oaNN_radiance'}")

        geometry = _node(tree, "conditions/geometry", source.id)
        sza_tie = _variable(geometry, "sza", "conditions/geometry", source.id)
        detector = _variable(_node(tree, "conditions/image", source.id), "detector_index",
                             "conditions/image", source.id)
        solar_flux = _variable(_node(tree, "conditions/instrument", source.id), "solar_flux",
                               "conditions/instrument", source.id).values
        quality = _node(tree, "quality", source.id)
        flags = _variable(quality, "quality_flags", "quality", source.id)
        mask = flag_mask(flags, _names(params.get("mask_flags", "invalid")))

        first = meas[available[wanted[0]]]
        shape = (first.sizes["rows"], first.sizes["columns"])
        al, ac = subsampling(sza_tie, shape)
        chunks = _chunks_of(first)[:2]
        sza = self._sza(sza_tie.values.astype(np.float64), shape, chunks, al=al, ac=ac)
        detector_in = _bare(detector, chunks)
        flags_in = _bare(flags, chunks)

        out_vars = {}
        for band in wanted:
            index = int(band[2:]) - 1
            rho = xr.apply_ufunc(
                toa_reflectance, _bare(meas[available[band]], chunks), detector_in, sza,
                flags_in,
                kwargs={"solar_flux": np.asarray(solar_flux[index], dtype=np.float64),
                        "flag_mask": mask},
                dask="parallelized", output_dtypes=[np.float64])
            # the input's coordinates, untouched (and on their own storage chunks)
            rho = rho.assign_coords(meas.coords)
            name = f"{band}_reflectance"
            rho.attrs = {"standard_name": "toa_bidirectional_reflectance",
                         "description": f"{FORMULA}, OLCI band {band}"}
            out_vars[name] = scaled(
                rho, scale_factor=REFLECTANCE_SCALE, add_offset=0.0,
                fill_value=REFLECTANCE_FILL, dtype="uint16", chunks=chunks, units="1",
                long_name=f"TOA reflectance for OLCI acquisition band {band}",
                short_name=name, valid_range=(0, REFLECTANCE_FILL - 1))

        flags_out = flags.copy()
        flags_out.encoding = {**flags.encoding,
                              "_FillValue": flags.encoding.get("_FillValue")}
        root = xr.Dataset(attrs={
            "stac_discovery": self._stac(stac, wanted),
            "other_metadata": self._other_metadata(source.id, props, al, ac, params),
        })
        return xr.DataTree.from_dict({
            "/": root,
            "measurements": xr.Dataset(out_vars),
            "quality": xr.Dataset({"quality_flags": flags_out}),
            "conditions/geometry": geometry,
        })

    @staticmethod
    def _sza(grid: np.ndarray, shape: tuple[int, int], chunks: tuple[int, ...], *,
             al: int, ac: int) -> xr.DataArray:
        """Full-resolution SZA, lazily, on the image's chunks."""

        def block(block_info: dict | None = None) -> np.ndarray:
            (r0, r1), (c0, c1) = block_info[None]["array-location"]
            return interpolate_tie_points(grid, np.arange(r0, r1), np.arange(c0, c1),
                                          al=al, ac=ac)

        data = da.map_blocks(block, dtype=np.float64,
                             chunks=da.core.normalize_chunks(chunks[:2], shape),
                             meta=np.empty((0, 0), dtype=np.float64))
        return xr.DataArray(data, dims=("rows", "columns"))

    def _stac(self, source: Mapping[str, Any], bands: Sequence[str]) -> dict[str, Any]:
        """The input's item, minus its identity, re-typed; bands limited to the output's."""
        props = {k: v for k, v in (source.get("properties") or {}).items()
                 if not k.startswith("processing:")}
        by_name = {b.get("name"): b for b in props.get("bands") or [] if isinstance(b, dict)}
        props["bands"] = [{**by_name.get(b, {"name": b}),
                           "description": f"TOA reflectance, OLCI band {b}"} for b in bands]
        props["product:type"] = self.product_type
        props["processing:level"] = self.level
        return {
            "type": "Feature",
            "stac_version": source.get("stac_version", "1.1.0"),
            "stac_extensions": list(source.get("stac_extensions") or []),
            "geometry": source.get("geometry"),
            "bbox": source.get("bbox"),
            "properties": props,
        }

    def _other_metadata(self, input_id: str, props: Mapping[str, Any], al: int, ac: int,
                        params: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "eopf_category": "eoproduct",
            "formula": FORMULA,
            "input_product": input_id,
            "input_product_type": props.get("product:type"),
            "solar_flux": "conditions/instrument/solar_flux (seasonally corrected), "
                          "indexed by conditions/image/detector_index",
            "sun_zenith_angle": "conditions/geometry/sza, bilinear from the tie-point grid",
            "tie_point_grid": {"al_subsampling_factor": al, "ac_subsampling_factor": ac},
            "masked_flags": _names(params.get("mask_flags", "invalid")),
            "reflectance_encoding": {"dtype": "uint16", "scale_factor": REFLECTANCE_SCALE,
                                     "add_offset": 0.0, "fill_value": REFLECTANCE_FILL},
            "corrections_not_applied": ["atmospheric", "gaseous absorption", "smile"],
        }

    def main_variables(self, tree: xr.DataTree) -> Mapping[str, str]:
        meas = tree["measurements"] if "measurements" in tree.children else None
        if meas is None:
            return {}
        return {f"{b}_reflectance": f"measurements/{b}_reflectance" for b in MAIN_BANDS
                if f"{b}_reflectance" in meas.data_vars}

    def quicklook(self, tree: xr.DataTree) -> np.ndarray | None:
        """RGB (oa08, oa06, oa04) or the first band in grey, <= 512 px, sqrt stretch."""
        if "measurements" not in tree.children:
            return None
        meas = tree["measurements"].to_dataset()
        names = [f"{b}_reflectance" for b in RGB_BANDS]
        if not all(n in meas for n in names):
            names = sorted(str(v) for v in meas.data_vars if str(v).endswith("_reflectance"))[:1]
        if not names:
            return None
        rows, columns = meas.sizes["rows"], meas.sizes["columns"]
        step = max(1, math.ceil(max(rows, columns) / QUICKLOOK_SIDE))
        small = meas[names].isel(rows=slice(None, None, step), columns=slice(None, None, step))
        planes = [np.nan_to_num(small[n].values, nan=0.0) for n in names]
        image = np.sqrt(np.clip(np.stack(planes, axis=-1) / 0.4, 0.0, 1.0))
        out = np.round(image * 255).astype(np.uint8)
        return out if len(names) == 3 else out[..., 0]
