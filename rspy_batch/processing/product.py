"""EOPF Zarr products as xarray DataTrees: encoding, writing, opening.

Layout rules follow CPM 2.8.1 (``../shared/reference/eopf-products.md`` §1): Zarr format 2,
blosc-zstd-3 with bit-shuffle on every array, ``_ARRAY_DIMENSIONS``, one ``.zmetadata`` at the
root written once after all data, integer data decoded with CF ``scale_factor``/``add_offset``,
and root attributes ``stac_discovery`` / ``other_metadata``. Zarr format 3 (with optional
sharding) is offered for consumers that do not need EOPF tooling.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
import zarr
from numcodecs import Blosc

from rspy_batch.errors import RspyError
from rspy_batch.s3 import split_location

#: ``eopf.store.zarr.DEFAULT_COMPRESSOR``.
EOPF_COMPRESSOR = Blosc(cname="zstd", clevel=3, shuffle=Blosc.BITSHUFFLE)
ZARR_MEDIA_TYPE = "application/vnd+zarr"


class ProductError(RspyError):
    """A product that cannot be read or written as an EOPF Zarr product."""


def scaled(
    data: xr.DataArray,
    *,
    scale_factor: float,
    add_offset: float = 0.0,
    fill_value: int,
    dtype: str = "uint16",
    chunks: tuple[int, ...] | None = None,
    units: str | None = None,
    long_name: str | None = None,
    short_name: str | None = None,
    valid_range: tuple[int, int] | None = None,
) -> xr.DataArray:
    """``data`` (physical values, NaN = no data) set up to be stored as scaled integers.

    CF attributes go to the encoding (xarray applies them on write); the ``_eopf_attrs``
    duplicate that CPM readers expect goes to the attributes.
    """
    out = data.copy(deep=False)
    attrs: dict[str, Any] = {k: v for k, v in data.attrs.items() if k != "_eopf_attrs"}
    if units is not None:
        attrs["units"] = units
    if long_name is not None:
        attrs["long_name"] = long_name
    if valid_range is not None:
        attrs["valid_min"], attrs["valid_max"] = valid_range
    attrs["_eopf_attrs"] = {
        "coordinates": [str(c) for c in data.coords],
        "dimensions": [str(d) for d in data.dims],
        "dtype": np.dtype(dtype).str,
        "fill_value": fill_value,
        "scale_factor": scale_factor,
        "add_offset": add_offset,
        "units": attrs.get("units", ""),
        "eopf_is_masked": True,
        "eopf_target_dtype": "<f8",
        "short_name": short_name or str(data.name or ""),
    }
    out.attrs = attrs
    out.encoding = {
        "dtype": dtype,
        "scale_factor": scale_factor,
        "add_offset": add_offset,
        "_FillValue": fill_value,
    }
    if chunks is not None:
        out.encoding["chunks"] = tuple(chunks)
    return out


def has_node(tree: xr.DataTree, path: str) -> bool:
    """True when ``path`` (a group or a variable) exists in ``tree``."""
    try:
        tree[path]
    except KeyError:
        return False
    return True


def _storage_chunks(var: xr.DataArray) -> tuple[int, ...] | None:
    """Storage chunks: explicit encoding first, then the Dask chunks (one chunk per block)."""
    if "chunks" in var.encoding:
        return tuple(var.encoding["chunks"])
    if var.chunks is not None:
        return tuple(max(c) for c in var.chunks)
    return None


def _check_alignment(path: str, var: xr.DataArray, chunks: tuple[int, ...]) -> None:
    """Dask blocks must be whole storage chunks (except the last), or writes would race."""
    if var.chunks is None:
        return
    for dim, blocks, size in zip(var.dims, var.chunks, chunks, strict=True):
        if any(b % size for b in blocks[:-1]):
            raise ProductError(
                f"{path}: dask chunks {blocks} along {dim!r} are not multiples of the "
                f"storage chunk {size}"
            )


def encodings(tree: xr.DataTree, *, zarr_format: int = 2,
              shards: Mapping[str, int] | None = None) -> dict[str, dict[str, dict]]:
    """The ``to_zarr`` encoding of every variable of every group.

    Format 2 gets CPM's compressor; format 3 gets zstd and, if ``shards`` maps dimension
    names to shard sizes, sharding with the storage chunks as inner chunks.
    """
    result: dict[str, dict[str, dict]] = {}
    for node in tree.subtree:
        group_enc: dict[str, dict] = {}
        for name, var in node.dataset.variables.items():
            enc = {k: v for k, v in var.encoding.items()
                   if k in {"dtype", "scale_factor", "add_offset", "_FillValue", "chunks",
                            "units", "calendar"}}
            chunks = _storage_chunks(var)
            if chunks is not None and var.ndim:
                chunks = tuple(min(c, s) for c, s in zip(chunks, var.shape, strict=True))
                _check_alignment(f"{node.path}/{name}", var, chunks)
                enc["chunks"] = chunks
            if zarr_format == 2:
                enc["compressors"] = [EOPF_COMPRESSOR]
            else:
                enc["compressors"] = [zarr.codecs.ZstdCodec(level=3)]
                if shards and var.ndim and chunks is not None:
                    enc["shards"] = tuple(
                        min(size, max(c, (shards.get(str(d), c) // c) * c))
                        for d, c, size in zip(var.dims, chunks, var.shape, strict=True)
                    )
            group_enc[str(name)] = enc
        if group_enc:
            result[node.path] = group_enc
    return result


def zarr_store(url: str, *, storage_options: Mapping[str, Any] | None = None,
               read_only: bool = False) -> Any:
    """A zarr store for a local path or an ``s3://`` URL."""
    kind, location = split_location(url)
    if kind == "local":
        return zarr.storage.LocalStore(location, read_only=read_only)
    return zarr.storage.FsspecStore.from_url(
        location, storage_options=dict(storage_options or {}), read_only=read_only
    )


def write_product(
    tree: xr.DataTree,
    url: str | zarr.abc.store.Store,
    *,
    storage_options: Mapping[str, Any] | None = None,
    zarr_format: int = 2,
    shards: Mapping[str, int] | None = None,
) -> str:
    """Write ``tree`` as a product at ``url`` (overwriting), compute once, consolidate once.

    All variables go into one Dask graph (``compute=False`` then a single ``dask.compute``),
    and ``.zmetadata`` is written after the data, so a reader that sees consolidated
    metadata sees a complete product. ``url`` may also be an open zarr store (e.g. a
    ``MemoryStore``, for tiny products built only to be zipped).
    """
    store = url if isinstance(url, zarr.abc.store.Store) else \
        zarr_store(url, storage_options=storage_options)
    encoding = encodings(tree, zarr_format=zarr_format, shards=shards)
    if shards:
        tree = _chunk_by_shard(tree, encoding)
    delayed = tree.to_zarr(
        store, mode="w", consolidated=False, compute=False, zarr_format=zarr_format,
        encoding=encoding,
    )
    dask.compute(delayed)
    with warnings.catch_warnings():
        # Zarr 3 has no consolidated metadata in its spec yet; zarr-python's is what
        # xarray reads, and it spares readers a request per group.
        warnings.simplefilter("ignore", zarr.errors.ZarrUserWarning)
        zarr.consolidate_metadata(store, zarr_format=zarr_format)
    return url


def _chunk_by_shard(tree: xr.DataTree, encoding: Mapping[str, Mapping[str, dict]]
                    ) -> xr.DataTree:
    """Dask blocks of whole shards: a shard is written in one piece, so two blocks sharing
    one would race."""
    def rechunk(node: xr.DataTree) -> xr.Dataset:
        ds = node.to_dataset(inherit=False)
        for name, enc in encoding.get(node.path, {}).items():
            if "shards" in enc and ds[name].chunks is not None:
                ds[name] = ds[name].chunk(dict(zip(ds[name].dims, enc["shards"], strict=True)))
        return ds

    return xr.DataTree.from_dict({node.path: rechunk(node) for node in tree.subtree}
                                 ) if tree.subtree else tree


def open_product(url: str | os.PathLike[str], *,
                 storage_options: Mapping[str, Any] | None = None,
                 chunks: Mapping[str, int] | None = None) -> xr.DataTree:
    """Open a product (directory, local ``.zip``, or ``s3://`` directory) lazily with Dask.

    ``chunks`` defaults to the storage chunks. A zipped product on S3 is not handled here:
    :func:`local_copy` fetches it first.
    """
    text = os.fspath(url)
    try:
        if text.endswith(".zip"):
            kind, location = split_location(text)
            if kind != "local":
                raise ProductError(f"open zipped products from a local copy: {text}")
            store = zarr.storage.ZipStore(location, mode="r")
        else:
            store = zarr_store(text, storage_options=storage_options, read_only=True)
        return xr.open_datatree(store, engine="zarr", consolidated=True,
                                chunks=dict(chunks) if chunks is not None else {})
    except ProductError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, zarr.errors.BaseZarrError) as exc:
        raise ProductError(f"cannot open EOPF product {os.path.basename(text)}: {exc}") from exc


@contextmanager
def local_copy(url: str, *, storage_options: Mapping[str, Any] | None = None,
               scratch: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A local path for ``url``: the path itself if local, else a temporary download."""
    kind, location = split_location(url)
    if kind == "local":
        yield Path(location)
        return
    import fsspec

    name = location.rstrip("/").rsplit("/", 1)[-1]
    if name in ("", ".", ".."):
        # The copy must stay inside its own temporary folder (and be removed with it).
        raise ProductError(f"cannot copy {url}: no usable file name")
    tmp = Path(tempfile.mkdtemp(prefix="rspy-in-", dir=scratch))
    try:
        target = tmp / name
        fs, path = fsspec.core.url_to_fs(location, **dict(storage_options or {}))
        fs.get(path, str(target), recursive=True)
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def zip_product(directory: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Zip a product directory reproducibly (sorted entries, fixed timestamps, stored).

    Chunks are already compressed, so entries are stored; the same product gives the same
    bytes, which keeps station checksums stable.
    """
    root = Path(directory)
    out = Path(target)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), (1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return out
