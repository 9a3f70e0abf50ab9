"""A third-party processor for tests, registered through an entry point (see
``tests/test_process_pipeline.py``). It reads the raw bytes of every staged file."""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from rspy_batch.processing.base import Processor, ProductInput


class ToyBytes(Processor):
    name = "toy-bytes"
    version = "0.1.0"
    level = "L-toy"
    product_type = "TOYBYTES_"
    title = "Byte histogram"
    parameters = {"fail_on": ""}

    def run(self, inputs: list[ProductInput], fail_on: str = "", **params: Any) -> xr.DataTree:
        item = inputs[0].item
        # The environment variable fails products without changing their parameters (and
        # so their ids): a test can fail a window, then retry the very same products.
        fail_on = fail_on or os.environ.get("TOYPROC_FAIL_ON", "")
        if fail_on and fail_on in item["id"]:
            raise ValueError(f"toy failure for {item['id']}")
        data = np.concatenate([np.fromfile(p, dtype="u1") for _, p in sorted(
            inputs[0].files.items())])
        lazy = da.from_array(data, chunks=max(1, len(data) // 3 + 1))
        hist = xr.DataArray(da.bincount(lazy, minlength=256).astype("u4"), dims=["value"])
        from distributed import get_client

        tree = xr.DataTree.from_dict({
            "/measurements": xr.Dataset({"histogram": hist,
                                         "bytes": xr.DataArray(lazy, dims=["offset"])}),
        })
        tree.attrs["stac_discovery"] = {
            "type": "Feature", "geometry": item.get("geometry"), "bbox": item.get("bbox"),
            "properties": {k: v for k, v in item["properties"].items()
                           if k in ("datetime", "start_datetime", "end_datetime", "platform")},
        }
        tree.attrs["other_metadata"] = {"scheduler": get_client().scheduler.address}
        return tree

    def main_variables(self, tree: xr.DataTree) -> dict[str, str]:
        return {"histogram": "measurements/histogram"}

    def quicklook(self, tree: xr.DataTree) -> np.ndarray:
        hist = tree["measurements/histogram"].values.astype("f8")
        return (255 * hist / max(hist.max(), 1)).astype("u1").reshape(16, 16)
