"""S2 L1C processing throughput against plain numpy and a bare zarr copy, in one run.

    .venv/bin/python bench/process.py [--size 10980] [--data bench/.data] [--keep]

A synthetic full-tile S2 L1C product (``make_s2_l1c``, 10980² at 10 m) is generated once
under ``--data`` and reused (generation time is printed, and remembered next to it). Then:

(a) the ``s2-l1c`` processor's ``produce`` (open lazily, compute, write Zarr v2 with one
    ``.zmetadata``) on a ``dask_client()`` LocalCluster;
(b) plain numpy on the same arrays already in memory (loaded untimed): the same formulas
    (decode, block-mean and repeat resampling, NDVI/NDWI, SCL, cloud score, re-encoding to
    the output integer types), kept in memory, not written;
(c) a bare zarr-python copy of the bytes the processor reads: every array of
    ``measurements/reflectance`` and ``conditions/geometry`` read whole and written to a new
    Zarr v2 store with the same chunks and codec (blosc zstd 3, bit-shuffle), consolidated.

The input is a product directory (a station's zip would add a ZipStore layer to (a) only).
All three read from the page cache when the input was just generated. Input MB is the
uncompressed size of the arrays the processor reads. Peak RSS is sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
import zarr

from rspy_batch.processing.base import OutputTarget, ProductInput
from rspy_batch.processing.cluster import dask_client
from rspy_batch.processing.processors.s2_l1c import (
    INDEX_FILL,
    NATIVE_RES,
    OUTPUT_BANDS,
    cloud_score,
    scene_classes,
)
from rspy_batch.processing.product import EOPF_COMPRESSOR, write_product
from rspy_batch.processing.samples import SampleSpec
from rspy_batch.processing.samples.s2 import make_s2_l1c

READ_GROUPS = ("measurements/reflectance/r10m", "measurements/reflectance/r20m",
               "measurements/reflectance/r60m", "conditions/geometry")
MB = 1e6


class PeakRss:
    """Peak resident memory of this process while the context is open (sampled)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._stop.wait(self.interval)

    @contextmanager
    def watch(self) -> Iterator[PeakRss]:
        self.peak = psutil.Process().memory_info().rss
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._stop.clear()


def spec_for(size: int) -> SampleSpec:
    start = datetime(2025, 1, 13, 10, 33, 9, tzinfo=UTC)
    return SampleSpec(name=f"S2B_MSIL1C_20250113T103309_N0511_R108_T32TLQ_bench{size}",
                      start=start, stop=start.replace(second=14), platform="sentinel-2b",
                      size=size, seed=11, absolute_orbit=40977, relative_orbit=108,
                      extra={"tile": "T32TLQ"})


def ensure_input(data: Path, size: int) -> Path:
    """The cached L1C product (``.zmetadata`` is written last, so its presence = complete)."""
    spec = spec_for(size)
    path = data / f"{spec.name}.zarr"
    info = data / f"{spec.name}.json"
    if (path / ".zmetadata").is_file():
        took = json.loads(info.read_text())["generation_s"] if info.is_file() else None
        print(f"input: reusing {path}" + (f" (generated in {took:.1f} s)" if took else ""))
        return path
    shutil.rmtree(path, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    print(f"input: generating {size}x{size} S2 L1C at {path} ...", flush=True)
    t0 = time.perf_counter()
    with dask_client():
        write_product(make_s2_l1c(spec), str(path))
    took = time.perf_counter() - t0
    info.write_text(json.dumps({"generation_s": took, "size": size}))
    print(f"input: generated in {took:.1f} s")
    return path


def read_arrays(path: Path) -> dict[str, zarr.Array]:
    root = zarr.open_group(str(path), mode="r")
    out = {}
    for group in READ_GROUPS:
        for name, arr in root[group].arrays():
            out[f"{group}/{name}"] = arr
    return out


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --- (a) the processor ---------------------------------------------------------------------


def run_processor(source: Path, out: Path) -> None:
    from rspy_batch.processing.processors.s2_l1c import S2L1CProcessor

    shutil.rmtree(out, ignore_errors=True)
    target = OutputTarget(url=str(out), product_id="S02MSIL2A_bench", properties={},
                          processing_history={})
    S2L1CProcessor().produce([ProductInput(item={"id": source.stem},
                                           files={"product": source})], target)


# --- (b) plain numpy -----------------------------------------------------------------------


def np_decode(dn: np.ndarray, scale: float, offset: float) -> np.ndarray:
    rho = dn.astype(np.float64)
    rho *= scale
    rho += offset
    rho[dn == 0] = np.nan
    return rho


def np_encode(rho: np.ndarray) -> np.ndarray:
    rho = np.clip(rho, 1e-4 - 0.1, 6.5535 - 0.1)
    nan = np.isnan(rho)
    rho += 0.1
    rho /= 1e-4
    np.rint(rho, out=rho)
    rho[nan] = 0
    return rho.astype(np.uint16)


def np_block_mean(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a.reshape(h // k, k, w // k, k), axis=(1, 3))


def np_repeat(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def np_index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    valid = (a > 0) & (b > 0)
    diff = a - b
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(diff, total, out=diff)
    del total
    diff /= 1e-4
    np.rint(diff, out=diff)
    diff[~valid] = INDEX_FILL
    return diff.astype(np.int16)


def run_numpy(raw: dict[str, np.ndarray], attrs: dict[str, dict]) -> dict[str, np.ndarray]:
    """Every output of the processor, as encoded integer arrays in memory.

    Ordered to hold few full-size float arrays at once (a 10 m band in float64 is 964 MB):
    indices first, then one 10 m band at a time, and 20/60 m floats only while needed.
    """
    def decoded(band: str) -> np.ndarray:
        key = f"measurements/reflectance/r{NATIVE_RES[band]}m/{band}"
        a = attrs[key]
        return np_decode(raw[key], a["scale_factor"], a["add_offset"])

    out: dict[str, np.ndarray] = {}
    b04, b08 = decoded("b04"), decoded("b08")
    out["ndvi"] = np_index(b08, b04)
    del b04
    b03 = decoded("b03")
    out["ndwi"] = np_index(b03, b08)
    del b03, b08
    coarse: dict[tuple[str, int], np.ndarray] = {}  # decoded bands at 20/60 m
    for band in ("b02", "b03", "b04", "b08"):
        rho = decoded(band)
        out[f"r10m/{band}"] = np_encode(rho)
        coarse[band, 20] = np_block_mean(rho, 2)
        coarse[band, 60] = np_block_mean(rho, 6)
        del rho
    for band in ("b05", "b06", "b07", "b8a", "b11", "b12"):
        coarse[band, 20] = decoded(band)
        coarse[band, 60] = np_block_mean(coarse[band, 20], 3)
    for band in ("b01", "b09", "b10"):
        coarse[band, 60] = decoded(band)
        coarse[band, 20] = np_repeat(coarse[band, 60], 3)
    scl_bands = ("b02", "b03", "b04", "b8a", "b10", "b11")
    for res in (20, 60):
        for band in OUTPUT_BANDS[res]:
            out[f"r{res}m/{band}"] = np_encode(coarse[band, res])
        out[f"scl{res}"] = scene_classes(*(coarse[b, res] for b in scl_bands))
        if res == 20:
            out["cld"] = cloud_score(coarse["b02", 20], out["scl20"])
            for key in [k for k in coarse if k[1] == 20]:
                del coarse[key]
    return out


# --- (c) bare zarr -------------------------------------------------------------------------


def run_bare_zarr(source: Path, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    store = zarr.storage.LocalStore(str(out))
    root = zarr.open_group(store, mode="w", zarr_format=2)
    for path, arr in read_arrays(source).items():
        data = arr[:]
        dst = root.create_array(path, shape=arr.shape, chunks=arr.chunks, dtype=arr.dtype,
                                compressors=[EOPF_COMPRESSOR], fill_value=arr.fill_value,
                                attributes=dict(arr.attrs))
        dst[...] = data
    zarr.consolidate_metadata(store, zarr_format=2)


# --- main ----------------------------------------------------------------------------------


def timed(label: str, fn: Callable[[], object]) -> tuple[float, int, object]:
    print(f"{label} ...", flush=True)
    rss = PeakRss()
    with rss.watch():
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    print(f"{label}: {seconds:.1f} s, peak RSS {rss.peak / 2**30:.2f} GiB", flush=True)
    return seconds, rss.peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10980, help="10 m side (multiple of 6)")
    parser.add_argument("--data", default=str(Path(__file__).parent / ".data"))
    parser.add_argument("--keep", action="store_true", help="keep the outputs of (a), (c)")
    args = parser.parse_args()
    data = Path(args.data)
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (start)")
    source = ensure_input(data, args.size)
    arrays = read_arrays(source)
    input_mb = sum(a.nbytes for a in arrays.values()) / MB
    print(f"input: {len(arrays)} arrays read by the processor, {input_mb:.0f} MB uncompressed, "
          f"{dir_bytes(source) / MB:.0f} MB on disk (whole product)")

    out_a, out_c = data / "out-processor.zarr", data / "out-bare-zarr.zarr"

    def processor() -> None:
        with dask_client():
            run_processor(source, out_a)

    secs_a, peak_a, _ = timed("(a) s2-l1c processor (read + compute + write)", processor)
    out_mb = dir_bytes(out_a) / MB

    print("(b) loading input arrays into numpy (untimed) ...", flush=True)
    raw = {k: a[:] for k, a in arrays.items() if k.startswith("measurements/")}
    attrs = {k: dict(a.attrs) for k, a in arrays.items()}
    secs_b, peak_b, result = timed("(b) numpy, same formulas, in memory",
                                   functools.partial(run_numpy, raw, attrs))
    n_out = len(result)
    del raw, result

    secs_c, peak_c, _ = timed("(c) bare zarr read + write", lambda: run_bare_zarr(source,
                                                                                   out_c))
    print()
    print(f"size {args.size}: input {input_mb:.0f} MB uncompressed; processor output "
          f"{out_mb:.0f} MB on disk; numpy made {n_out} arrays")
    print(f"{'':34}{'seconds':>9}{'MB/s':>9}{'peak RSS GiB':>14}")
    for label, secs, peak in (("(a) s2-l1c processor", secs_a, peak_a),
                              ("(b) numpy in memory", secs_b, peak_b),
                              ("(c) bare zarr read+write", secs_c, peak_c)):
        print(f"{label:34}{secs:9.1f}{input_mb / secs:9.1f}{peak / 2**30:14.2f}")
    print(f"ratio processor / numpy:     {secs_a / secs_b:.2f}")
    print(f"ratio processor / bare zarr: {secs_a / secs_c:.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} (end)")
    if not args.keep:
        shutil.rmtree(out_a, ignore_errors=True)
        shutil.rmtree(out_c, ignore_errors=True)


if __name__ == "__main__":
    main()
