"""Synthetic, layout-faithful EOPF products for the simulator, tests and benchmarks.

Every builder has the same keyword signature (:class:`SampleSpec`) and returns a lazy or
in-memory DataTree ready for :func:`rspy_batch.processing.product.write_product`.
``size`` is the builder's main image side in pixels (S2: the 10 m grid, a multiple of 6;
S1: GRD lines and samples; S3: OLCI rows and columns); tests use tiny sizes and the
benchmark uses the full S2 tile (10980).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import xarray as xr


@dataclass(frozen=True)
class SampleSpec:
    """What a station knows about a product: enough to synthesise a coherent one."""

    name: str                      # legacy product name (without .zarr), e.g. S2B_MSIL1C_...
    start: datetime
    stop: datetime
    platform: str                  # "sentinel-2b"
    size: int
    seed: int = 0
    absolute_orbit: int = 0
    relative_orbit: int = 0
    footprint: dict[str, Any] = field(default_factory=dict)  # GeoJSON Polygon, lon/lat
    extra: dict[str, Any] = field(default_factory=dict)      # builder-specific (tile, mode...)


Builder = Callable[[SampleSpec], xr.DataTree]


def builders() -> dict[str, Builder]:
    """EOPF product type -> builder. Imported lazily: builders pull in larger modules."""
    from rspy_batch.processing.samples import s1, s2, s3

    return {
        "S02MSIL1C": s2.make_s2_l1c,
        "S01SIWGRD": s1.make_s1_grd,
        "S03OLCEFR": s3.make_s3_olci_efr,
    }
