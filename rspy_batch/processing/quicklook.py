"""Quicklook PNGs: the thumbnail asset of a processed product."""

from __future__ import annotations

import warnings

import numpy as np

from rspy_batch.processing.product import ProductError

MAX_SIDE = 512


def stretch(values: np.ndarray, *, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """``values`` (any float array, NaN = no data) as uint8 with a percentile stretch."""
    data = np.asarray(values, dtype="float64")
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype="uint8")
    lo, hi = np.percentile(data[finite], [low, high])
    scaled = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    out = np.clip(np.nan_to_num(scaled, nan=0.0) * 255.0, 0, 255).round().astype("uint8")
    return out


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an H×W or H×W×3 uint8 image as PNG (GDAL's PNG driver, via rasterio)."""
    import rasterio
    from rasterio.io import MemoryFile

    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or \
            (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ProductError(f"quicklook must be uint8 H×W or H×W×3, got {array.dtype} "
                           f"{array.shape}")
    bands = array[np.newaxis] if array.ndim == 2 else np.moveaxis(array, 2, 0)
    step = max(1, -(-max(bands.shape[1:]) // MAX_SIDE))
    bands = np.ascontiguousarray(bands[:, ::step, ::step])
    with warnings.catch_warnings(), rasterio.Env(GDAL_PAM_ENABLED="NO"), MemoryFile() as mem:
        # A quicklook has no georeferencing on purpose.
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=bands.shape[2], height=bands.shape[1],
                      count=bands.shape[0], dtype="uint8") as dst:
            dst.write(bands)
        return mem.read()
