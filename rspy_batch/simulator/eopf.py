"""EOPF Zarr payloads: a station record's product built by the sample builders, zipped.

The bytes come from :func:`rspy_batch.processing.samples.builders` (the same builders tests
and benchmarks use), written with :func:`~rspy_batch.processing.product.write_product` and
zipped with :func:`~rspy_batch.processing.product.zip_product`, which is reproducible: the
same (seed, product, size) always gives the same bytes, so a checksum advertised before a
download stays true. A build costs far more than any other payload (a real Zarr write), so
each product is built once per process, on first need, and kept as a file in a temporary
directory shared by every simulator of the process.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rspy_batch.simulator.detrand import digest

if TYPE_CHECKING:  # the processing stack loads on the first build, not with the simulator
    from rspy_batch.processing.samples import SampleSpec

ZARR_ZIP = ".zarr.zip"

#: real product sizes relative to the S2 L1C 10 m side (10980): S1 IW GRDH lines × samples
#: (about 16700 × 25400) and an OLCI EFR frame's rows × columns (4091 × 4865)
_S1_RATIO = (16700 / 10980, 25400 / 10980)
_S3_RATIO = (4091 / 10980, 4865 / 10980)
#: in-memory build up to this S2 side; above it the lazy tree goes to a local directory,
#: block by block
_IN_MEMORY_MAX = 1830


@dataclass(frozen=True)
class EopfPlan:
    """What a station knows about an EOPF product: enough to build it (a SampleSpec less the
    run-dependent size and seed)."""

    product_type: str  # EOPF type: S02MSIL1C | S01SIWGRD | S03OLCEFR
    platform: str  # "sentinel-2b"
    start: datetime
    stop: datetime
    absolute_orbit: int
    relative_orbit: int
    footprint: dict[str, Any]  # GeoJSON Polygon, lon/lat
    extra: dict[str, Any] = field(default_factory=dict)


def product_seed(seed: int, product_id: str) -> int:
    """The builder seed: from the simulator seed and the product's entity Id."""
    return int.from_bytes(digest(seed, "eopf-seed", product_id)[:4], "big")


def size_extra(product_type: str, eopf_size: int) -> tuple[int, dict[str, int]]:
    """(``SampleSpec.size``, size-related ``extra``) for a product type at ``eopf_size``."""
    if product_type == "S01SIWGRD":
        lines, samples = (max(16, round(eopf_size * r)) for r in _S1_RATIO)
        return lines, {"lines": lines, "samples": samples}
    if product_type == "S03OLCEFR":
        rows, columns = (max(8, round(eopf_size * r)) for r in _S3_RATIO)
        # EFR tie points are every 64 columns; tiny frames keep at least 5 of them
        ac = max(2, min(64, (columns - 1) // 4))
        return columns, {"rows": rows, "columns": columns, "ac_subsampling": ac}
    return eopf_size, {}


def sample_spec(plan: EopfPlan, name: str, seed: int, product_id: str, eopf_size: int
                ) -> SampleSpec:
    """The builder's :class:`SampleSpec` for one station product (``name`` without suffix)."""
    from rspy_batch.processing.samples import SampleSpec

    size, sized = size_extra(plan.product_type, eopf_size)
    return SampleSpec(
        name=name, start=plan.start, stop=plan.stop, platform=plan.platform, size=size,
        seed=product_seed(seed, product_id), absolute_orbit=plan.absolute_orbit,
        relative_orbit=plan.relative_orbit, footprint=plan.footprint,
        extra={**plan.extra, **sized},
    )


def build_zip(plan: EopfPlan, name: str, seed: int, product_id: str, eopf_size: int,
              target: Path) -> Path:
    """Build the product and write it as a zipped EOPF Zarr product at ``target``."""
    import zarr

    from rspy_batch.processing.product import write_product, zip_product
    from rspy_batch.processing.samples import builders

    spec = sample_spec(plan, name, seed, product_id, eopf_size)
    tree = builders()[plan.product_type](spec)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=target.parent))
    try:
        product_dir = work / (name + ".zarr")
        if eopf_size <= _IN_MEMORY_MAX:
            # Tiny products: compute, write to memory, then dump the objects: a local
            # store's per-object round trips cost twice the whole build. The explicit
            # scheduler keeps a Dask client some caller made the default out of it.
            tree = tree.compute(scheduler="synchronous")
            objects: dict[str, Any] = {}
            write_product(tree, zarr.storage.MemoryStore(store_dict=objects))
            for key, buffer in objects.items():
                path = product_dir / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(buffer.to_bytes())
        else:
            write_product(tree, str(product_dir))
        part = work / "product.zip"
        zip_product(product_dir, part)
        os.replace(part, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


class EopfCache:
    """Built products of this process, one file each, keyed by everything their bytes depend
    on; a product is built once even when threads ask for it together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._built: dict[tuple, Path] = {}
        self._dir: Path | None = None

    def _directory(self) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="rspy-sim-eopf-"))
                atexit.register(shutil.rmtree, self._dir, True)
            return self._dir

    def get(self, plan: EopfPlan, name: str, seed: int, product_id: str, eopf_size: int
            ) -> Path:
        """The zipped product's path, built on the first call."""
        key = (seed, name, product_id, eopf_size, repr(plan))
        with self._lock:
            hit = self._built.get(key)
            if hit is not None:
                return hit
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                hit = self._built.get(key)
            if hit is not None:
                return hit
            path = self._directory() / f"{digest(*key).hex()[:32]}{ZARR_ZIP}"
            build_zip(plan, name, seed, product_id, eopf_size, path)
            with self._lock:
                self._built[key] = path
                self._key_locks.pop(key, None)
            return path


CACHE = EopfCache()
