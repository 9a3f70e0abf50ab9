"""NDVI from a Sentinel-2 L1C product, as an EOPF CPM processing unit (DataTree mode).

Run by ``eopf trigger local`` with ``general_configuration.triggering__use_datatree: true``:
CPM opens the input with ``xr.open_datatree(engine="zarr", chunks="auto")`` (CF-decoded, so
bands are TOA reflectance with NaN for no data), calls :meth:`NdviUnit.run`, and writes the
returned tree with ``DataTree.to_zarr(consolidated=True, mode="w")``: Zarr v2 with
``.zmetadata``, but with xarray's default compressor (blosc lz4) unless each variable's
``encoding`` says otherwise, so the unit sets CPM's own (blosc zstd 3, bit-shuffle).

Computation: ``NDVI = (nir - red) / (nir + red)`` on ``measurements/reflectance/<resolution>``
(default b08, b04 at r10m), defined where both reflectances are > 0 (so it lies in (-1, 1)),
NaN elsewhere; computed in float64, stored as float32 with NaN fill, storage chunks = the red
band's. Lazy: one Dask graph over the input chunks, computed by CPM's writer.

Parameters (the payload's ``workflow[].parameters``, passed as ``**kwargs``): ``red``,
``nir``, ``resolution``, ``product_type`` (``product:type`` of the output, default
``S02MSINDV``), ``properties`` (merged into ``stac_discovery.properties``). Anything else
is an error, so a misspelt parameter does not pass silently.

This module runs inside the eopf venv: it imports only eopf, xarray, numpy and the stdlib.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from eopf.computing import EOProcessingUnit
from eopf.store.zarr import DEFAULT_COMPRESSOR

#: EOPF-style type name (mission S02, instrument MSI, "NDV" for the index); not an ESA type
PRODUCT_TYPE = "S02MSINDV"
DEFAULTS: dict[str, Any] = {"red": "b04", "nir": "b08", "resolution": "r10m",
                            "product_type": PRODUCT_TYPE, "properties": {}}
FORMULA = "(nir - red) / (nir + red), where red > 0 and nir > 0, else NaN"


def ndvi(red: xr.DataArray, nir: xr.DataArray) -> xr.DataArray:
    """Lazy NDVI (float32) from two reflectance arrays; NaN where either is <= 0 or NaN."""
    red64 = red.astype(np.float64)
    nir64 = nir.astype(np.float64)
    value = xr.where((red64 > 0) & (nir64 > 0), (nir64 - red64) / (nir64 + red64), np.nan)
    return value.astype(np.float32)


def storage_chunks(var: xr.DataArray) -> tuple[int, ...]:
    """The variable's Zarr chunks (from its encoding), else its largest Dask blocks."""
    chunks = var.encoding.get("chunks") or var.encoding.get("preferred_chunks")
    if isinstance(chunks, Mapping):
        chunks = tuple(chunks[d] for d in var.dims)
    if chunks:
        return tuple(int(c) for c in chunks)
    if var.chunks:
        return tuple(int(max(c)) for c in var.chunks)
    return tuple(int(n) for n in var.shape)


def _clean_coord(coord: xr.DataArray) -> xr.DataArray:
    """A coordinate without the input's read-side encoding, stored whole with CPM's codec."""
    out = xr.DataArray(np.asarray(coord.values), dims=coord.dims, attrs=dict(coord.attrs))
    out.encoding = {"chunks": tuple(coord.shape), "compressor": DEFAULT_COMPRESSOR}
    return out


def check_parameters(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The unit's parameters with defaults; unknown names or wrong types raise ValueError."""
    unknown = sorted(set(kwargs) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"NdviUnit: unknown parameter(s) {unknown}; accepted: "
                         f"{sorted(DEFAULTS)}")
    params = {**DEFAULTS, **kwargs}
    for name in ("red", "nir", "resolution", "product_type"):
        if not isinstance(params[name], str) or not params[name]:
            raise ValueError(f"NdviUnit: parameter {name!r} must be a non-empty string, got "
                             f"{params[name]!r}")
    if not isinstance(params["properties"], Mapping):
        raise ValueError(f"NdviUnit: parameter 'properties' must be a mapping, got "
                         f"{type(params['properties']).__name__}")
    return params


def _band(tree: xr.DataTree, group: str, band: str) -> xr.DataArray:
    try:
        return tree[f"{group}/{band}"]
    except KeyError:
        raise ValueError(f"NdviUnit: the input has no {group}/{band}") from None


def _root_attrs(attrs: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The input's root attributes, retyped as the NDVI product (runner stamps the rest)."""
    out = copy.deepcopy(dict(attrs))
    stac = out.setdefault("stac_discovery", {})
    props = dict(stac.get("properties") or {})
    used = {params["red"], params["nir"]}
    if isinstance(props.get("bands"), list):
        props["bands"] = [b for b in props["bands"]
                          if isinstance(b, Mapping) and b.get("name") in used]
    props.update({"product:type": params["product_type"], "eopf:type": params["product_type"],
                  "processing:lineage": f"NDVI {FORMULA} from "
                                        f"{props.get('product:type', 'the input')} "
                                        f"TOA reflectance ({params['nir']}, {params['red']})"})
    props.update(params["properties"])
    stac["properties"] = props
    other = out.setdefault("other_metadata", {})
    other["ndvi"] = {"formula": FORMULA, "red": params["red"], "nir": params["nir"],
                     "resolution": params["resolution"],
                     "reflectance": "top of atmosphere (no atmospheric correction)"}
    return out


def ndvi_product(tree: xr.DataTree, **kwargs: Any) -> xr.DataTree:
    """The NDVI product of an S2 L1C tree: ``measurements/ndvi`` plus carried root attrs."""
    params = check_parameters(kwargs)
    group = f"measurements/reflectance/{params['resolution']}"
    red = _band(tree, group, params["red"])
    nir = _band(tree, group, params["nir"])
    if red.dims != nir.dims or red.shape != nir.shape:
        raise ValueError(f"NdviUnit: {params['red']} {dict(red.sizes)} and {params['nir']} "
                         f"{dict(nir.sizes)} are not on the same grid")
    chunks = storage_chunks(red)
    dask_chunks = dict(zip(red.dims, chunks, strict=True))
    value = ndvi(red.chunk(dask_chunks), nir.chunk(dask_chunks))
    coords = {str(d): _clean_coord(tree[group][d]) for d in red.dims if d in tree[group].coords}
    out = xr.DataArray(value.data, dims=red.dims, coords=coords, name="ndvi")
    out.attrs = {
        **{k: v for k, v in red.attrs.items() if k.startswith("proj:")},
        "long_name": "normalized difference vegetation index (TOA)", "units": "1",
        "formula": FORMULA, "valid_min": -1.0, "valid_max": 1.0,
        "_eopf_attrs": {"coordinates": list(coords), "dimensions": [str(d) for d in red.dims],
                        "dtype": "<f4", "units": "1", "short_name": "ndvi",
                        "eopf_is_masked": True},
    }
    out.encoding = {"dtype": "float32", "_FillValue": np.float32(np.nan), "chunks": chunks,
                    "compressor": DEFAULT_COMPRESSOR}
    result = xr.DataTree.from_dict({"/measurements": xr.Dataset({"ndvi": out})})
    result.attrs = _root_attrs(tree.attrs, params)
    return result


class NdviUnit(EOProcessingUnit):
    """CPM unit: one S2 L1C input (any input name) -> output ``ndvi``."""

    PROCESSOR_NAME = "rspy_ndvi"
    PROCESSOR_VERSION = "1.0.0"
    PROCESSOR_LEVEL = "L1C"
    #: no ``models/*.json`` processing model next to this module
    PROCESSOR_MODEL = False

    def run(self, inputs: Mapping[str, Any], adfs: Mapping[str, Any] | None = None,
            mode: str | None = None, **kwargs: Any) -> dict[str, xr.DataTree]:
        if len(inputs) != 1:
            raise ValueError(f"NdviUnit takes exactly one input product, got {sorted(inputs)}")
        (tree,) = inputs.values()
        if not isinstance(tree, xr.DataTree):
            raise TypeError(f"NdviUnit needs DataTree inputs (general_configuration: "
                            f"triggering__use_datatree: true), got {type(tree).__name__}")
        return {"ndvi": ndvi_product(tree, **kwargs)}
