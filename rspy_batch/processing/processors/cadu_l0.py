"""``cadu-l0``: one CADIP downlink session (raw CADU chunk files) → one L0 product.

The chunk files of a session are scanned in channel/block order with the vectorised
parser of :mod:`rspy_batch.formats.cadu` (what counts as a corrupt frame is documented
there). Valid frames are demultiplexed by virtual channel id: ``measurements/vcNN`` holds
the frame payloads and per-frame counters, ``quality`` the per-VC and per-chunk counts, and
``other_metadata["cadu_quality"]`` the same summary as JSON.

Counter continuity is tracked per (CADIP channel, VCID) stream, because the simulator's
channels each carry the same VCIDs with counters of their own. A downlink that split one
VC's counter sequence across both channels would show spurious gaps under this rule.
Frames lost to corruption show up as missing frames of their VC.

Headers are parsed eagerly (frame counts are not known before); the payloads are read
lazily, one Dask task per storage chunk of frames, from the memory-mapped chunk files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dask
import dask.array as da
import numpy as np
import xarray as xr

from rspy_batch.formats.cadu import (
    CADU_LEN,
    COUNTER_MODULO,
    FRAME_LEN,
    HEADER_LEN,
    PAYLOAD_LEN,
    SPACECRAFT_IDS,
    SYNC_LEN,
    SYNC_MARKER,
    CaduScan,
    counter_steps,
    scan_cadus,
)
from rspy_batch.mapping import extensions as ext
from rspy_batch.processing.base import Processor, ProductInput
from rspy_batch.processing.product import ProductError

#: L0 product type per mission (``constellation``); CPM names L0 types ``S3OLCL0_``-style,
#: a raw session product has no instrument so it is ``RAW`` here.
PRODUCT_TYPES: dict[str, str] = {
    "sentinel-1": "S01RAWL0_",
    "sentinel-2": "S02RAWL0_",
    "sentinel-3": "S03RAWL0_",
}
#: the class-level type, for a platform outside :data:`PRODUCT_TYPES`
GENERIC_PRODUCT_TYPE = "S00RAWL0_"
_HALF = COUNTER_MODULO // 2  # a step this large is a counter going backwards, not a gap
_NAME = re.compile(r"_ch(\d+)_DSDB_(\d+)")
_PAYLOAD_START = SYNC_LEN + HEADER_LEN


@dataclass(frozen=True)
class ChunkFile:
    """One DSDB chunk file of the session."""

    key: str  # asset key (the station's file name)
    path: Path
    channel: int
    block: int


@dataclass(frozen=True)
class SessionFrames:
    """Every valid frame of the session, in channel/block/offset order."""

    chunk: np.ndarray  # index into the chunk list
    channel: np.ndarray
    offset: np.ndarray
    vcid: np.ndarray
    counter: np.ndarray
    #: frames missing before each frame in its (channel, VCID) stream; -1 = stream start
    missing: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        return (self.missing > 0) & (self.missing < _HALF)

    @property
    def reset(self) -> np.ndarray:
        return self.missing >= _HALF


def product_type_for(item: Mapping[str, Any]) -> str:
    """The L0 product type of a session item, from its platform."""
    props = item.get("properties") or {}
    constellation = props.get("constellation") or str(props.get("platform") or "")[:-1]
    return PRODUCT_TYPES.get(str(constellation), GENERIC_PRODUCT_TYPE)


def spacecraft_id_for(item: Mapping[str, Any]) -> int | None:
    """The expected VCDU spacecraft id (``sentinel-1a`` → ``S1A``), None if unknown."""
    platform = str((item.get("properties") or {}).get("platform") or "")
    m = re.fullmatch(r"sentinel-(\d)([a-z])", platform)
    return SPACECRAFT_IDS.get(f"S{m[1]}{m[2].upper()}") if m else None


def chunk_files(inp: ProductInput) -> list[ChunkFile]:
    """The CADU assets of the item in channel/block order (file name as fallback)."""
    assets = inp.item.get("assets") or {}
    out = []
    for key, path in inp.files.items():
        asset = assets.get(key) or {}
        roles = asset.get("roles")
        if roles and "cadu" not in roles:
            continue
        named = _NAME.search(key)
        channel = asset.get("cadip:channel", int(named[1]) if named else 0)
        block = asset.get("cadip:block_number", int(named[2]) if named else 0)
        out.append(ChunkFile(key, Path(path), int(channel), int(block)))
    return sorted(out, key=lambda c: (c.channel, c.block, c.key))


def scan_file(path: Path, spacecraft_id: int | None) -> CaduScan:
    """Scan one chunk file through a read-only memory map (released on return)."""
    try:
        if path.stat().st_size == 0:
            return scan_cadus(b"", spacecraft_id)
        return scan_cadus(np.memmap(path, dtype=np.uint8, mode="r"), spacecraft_id)
    except OSError as exc:
        raise ProductError(f"cannot read CADU chunk {path.name}: {exc}") from exc


def session_frames(chunks: Sequence[ChunkFile], scans: Sequence[CaduScan]) -> SessionFrames:
    """Concatenate the scans and find each frame's counter step within its stream."""
    sizes = [s.frames for s in scans]
    chunk = np.repeat(np.arange(len(scans), dtype=np.int32), sizes)
    channel = np.repeat(np.array([c.channel for c in chunks], dtype=np.int64), sizes)
    vcid = np.concatenate([s.vcids for s in scans]) if scans else np.zeros(0, np.uint8)
    counter = np.concatenate([s.counters for s in scans]) if scans else np.zeros(0, np.uint32)
    offset = np.concatenate([s.offsets for s in scans]) if scans else np.zeros(0, np.int64)
    stream = channel * 64 + vcid
    order = np.argsort(stream, kind="stable")  # stable: keeps stream order within a stream
    same = stream[order][1:] == stream[order][:-1]
    missing = np.full(stream.size, -1, dtype=np.int64)
    missing[order[1:][same]] = counter_steps(counter[order])[same]
    return SessionFrames(chunk, channel, offset, vcid, counter, missing)


def _counts(frames: SessionFrames, mask: np.ndarray) -> dict[str, int]:
    return {
        "frames": int(np.count_nonzero(mask)),
        "gaps": int(np.count_nonzero(frames.gap & mask)),
        "missing_frames": int(frames.missing[frames.gap & mask].sum()),
        "counter_resets": int(np.count_nonzero(frames.reset & mask)),
    }


def quality_summary(chunks: Sequence[ChunkFile], scans: Sequence[CaduScan],
                    frames: SessionFrames) -> dict[str, Any]:
    """``cadu_quality``: per VC, per chunk file, and session totals."""
    summary: dict[str, Any] = {
        f"vc{v:02d}": _counts(frames, frames.vcid == v) for v in np.unique(frames.vcid)
    }
    per_chunk = {}
    for i, (c, s) in enumerate(zip(chunks, scans, strict=True)):
        per_chunk[c.key] = {
            "channel": c.channel, "block": c.block, "bytes": s.size,
            **_counts(frames, frames.chunk == i),
            "corrupt": s.corrupt, "bad_header": s.bad_header, "lost_sync": s.lost_sync,
            "lost_sync_bytes": s.lost_sync_bytes, "truncated": s.truncated,
            "truncated_bytes": s.truncated_bytes,
        }
    summary["total"] = {
        **_counts(frames, np.ones(frames.vcid.size, dtype=bool)),
        "corrupt": sum(s.corrupt for s in scans),
        "chunks": len(chunks),
        "empty_chunks": sum(1 for s in scans if s.size == 0),
        "chunks_without_frames": sum(1 for s in scans if s.frames == 0),
    }
    summary["chunks"] = per_chunk
    return summary


def quality_dataset(summary: Mapping[str, Any]) -> xr.Dataset:
    """``quality``: per-VC counts (dim ``vcid``) and per-chunk counts (dim ``chunk``)."""
    vcs = sorted(k for k in summary if re.fullmatch(r"vc\d\d", k))
    per_chunk = summary["chunks"]
    names = list(per_chunk)
    ds = xr.Dataset(coords={"vcid": ("vcid", np.array([int(k[2:]) for k in vcs], np.uint8))})
    for field in ("frames", "gaps", "missing_frames", "counter_resets"):
        ds[field] = ("vcid", np.array([summary[k][field] for k in vcs], np.uint64))
    ds["chunk_name"] = ("chunk", np.array(names, dtype=str))
    for field in ("channel", "block", "bytes", "frames", "gaps", "missing_frames", "corrupt",
                  "bad_header", "lost_sync", "lost_sync_bytes", "truncated",
                  "truncated_bytes"):
        ds[f"chunk_{field}"] = ("chunk", np.array([per_chunk[n][field] for n in names],
                                                  np.uint64))
    ds.attrs = {}
    return ds


def read_payloads(paths: tuple[str, ...], chunk: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The payloads (frame minus sync marker and header) of the given frames.

    Consecutive frames one CADU apart are copied as one strided view of the memory map.
    """
    out = np.empty((offset.size, PAYLOAD_LEN), dtype=np.uint8)
    if offset.size == 0:
        return out
    breaks = np.flatnonzero((np.diff(offset) != CADU_LEN) | (np.diff(chunk) != 0)) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [offset.size]])
    maps: dict[int, np.ndarray] = {}
    for a, b in zip(starts, stops, strict=True):
        c = int(chunk[a])
        if c not in maps:
            maps[c] = np.memmap(paths[c], dtype=np.uint8, mode="r")
        view = maps[c][int(offset[a]) + _PAYLOAD_START:]
        out[a:b] = np.lib.stride_tricks.as_strided(
            view, shape=(b - a, PAYLOAD_LEN), strides=(CADU_LEN, 1), writeable=False)
    return out


def _variable(name: str, data: Any, dims: tuple[str, ...], chunks: tuple[int, ...],
              long_name: str) -> xr.DataArray:
    """An unscaled variable with its storage chunks and CPM's ``_eopf_attrs``."""
    var = xr.DataArray(data, dims=dims)
    var.attrs = {
        "long_name": long_name,
        "_eopf_attrs": {"coordinates": [], "dimensions": list(dims),
                        "dtype": np.dtype(var.dtype).str, "eopf_is_masked": False,
                        "long_name": long_name, "short_name": name, "units": ""},
    }
    var.encoding = {"chunks": tuple(min(c, s) for c, s in zip(chunks, var.shape, strict=True))}
    return var


def vc_dataset(vcid: int, frames: SessionFrames, paths: tuple[str, ...],
               frames_per_chunk: int) -> xr.Dataset:
    """``measurements/vcNN``: payloads (lazy) and per-frame header fields of one VC."""
    sel = np.flatnonzero(frames.vcid == vcid)
    chunk, offset = frames.chunk[sel], frames.offset[sel]
    blocks = [
        da.from_delayed(
            dask.delayed(read_payloads, pure=True)(paths, chunk[i:i + frames_per_chunk],
                                                    offset[i:i + frames_per_chunk]),
            shape=(min(frames_per_chunk, sel.size - i), PAYLOAD_LEN), dtype=np.uint8)
        for i in range(0, sel.size, frames_per_chunk)
    ]
    data = da.concatenate(blocks, axis=0)
    per_frame = {
        "frame_count": (frames.counter[sel].astype(np.uint32),
                        "virtual channel frame counter (24 bits)"),
        "channel": (frames.channel[sel].astype(np.uint8), "CADIP downlink channel"),
        "source_chunk": (chunk.astype(np.uint16), "index of the chunk file along quality/chunk"),
        "source_offset": (offset.astype(np.uint64), "byte offset of the CADU in its chunk file"),
    }
    ds = xr.Dataset({
        "data": _variable("data", data, ("frame", "byte"), (frames_per_chunk, PAYLOAD_LEN),
                          f"transfer frame data field (VCID {vcid}, {PAYLOAD_LEN} bytes)"),
        **{name: _variable(name, values, ("frame",), (frames_per_chunk,), long_name)
           for name, (values, long_name) in per_frame.items()},
    })
    ds.attrs = {}
    return ds


def stac_discovery(item: Mapping[str, Any], product_type: str) -> dict[str, Any]:
    """The product's STAC skeleton from the session item: times, platform, orbit.

    CADIP sessions have no footprint, so the geometry is the item's (null) and ``bbox`` is
    only present when the item has one, as STAC requires for a null geometry.
    """
    props = item.get("properties") or {}
    start = props.get("start_datetime") or props.get("datetime")
    if not start:
        raise ProductError(f"session {item.get('id')}: no downlink start time")
    out_props = {
        "datetime": props.get("datetime") or start,
        "start_datetime": start,
        "end_datetime": props.get("end_datetime") or start,
        "platform": props.get("platform"),
        "constellation": props.get("constellation"),
        "sat:absolute_orbit": props.get("sat:absolute_orbit"),
        "product:type": product_type,
        "processing:level": "L0",
    }
    out: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [e for e, used in (
            (ext.SAT, out_props["sat:absolute_orbit"] is not None),
            (ext.PRODUCT, True), (ext.PROCESSING, True)) if used],
        "geometry": item.get("geometry"),
        "properties": {k: v for k, v in out_props.items() if v is not None},
    }
    if item.get("bbox") is not None:
        out["bbox"] = list(item["bbox"])
    return out


def _int_param(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return value if isinstance(value, int) else int(str(value), 0)
    except ValueError:
        raise ProductError(f"parameter {name}={value!r} is not an integer") from None


class CaduL0Processor(Processor):
    """CADIP session → L0 product of demultiplexed virtual channels with quality counts."""

    name: ClassVar[str] = "cadu-l0"
    version: ClassVar[str] = "1.0.0"
    level: ClassVar[str] = "L0"
    #: per mission the output's type is ``S01RAWL0_`` / ``S02RAWL0_`` / ``S03RAWL0_``
    #: (:func:`product_type_for`); this generic one is for unknown platforms
    product_type: ClassVar[str] = GENERIC_PRODUCT_TYPE
    title: ClassVar[str] = "Raw CADU session to L0 virtual-channel frames"
    parameters: ClassVar[Mapping[str, Any]] = {
        "frames_per_chunk": 4096,  # storage chunk along ``frame``: ~4 MB of payload
        "spacecraft_id": None,  # override of the id expected from the platform
    }

    def product_type_for(self, items: Sequence[Mapping[str, Any]]) -> str:
        """The mission's L0 type for a group of (one) session items."""
        return product_type_for(items[0]) if items else self.product_type

    def run(self, inputs: Sequence[ProductInput], **params: Any) -> xr.DataTree:
        if len(inputs) != 1:
            raise ProductError(f"cadu-l0 makes one product per session, got {len(inputs)} "
                               "inputs")
        inp = inputs[0]
        frames_per_chunk = _int_param(params.get("frames_per_chunk"), "frames_per_chunk")
        if not frames_per_chunk or frames_per_chunk <= 0:
            raise ProductError("parameter frames_per_chunk must be a positive integer")
        scid = _int_param(params.get("spacecraft_id"), "spacecraft_id")
        if scid is None:
            scid = spacecraft_id_for(inp.item)
        chunks = chunk_files(inp)
        if not chunks:
            raise ProductError(f"session {inp.id}: no CADU chunk file staged")
        scans = [scan_file(c.path, scid) for c in chunks]
        frames = session_frames(chunks, scans)
        summary = quality_summary(chunks, scans, frames)
        if frames.vcid.size == 0:
            total = summary["total"]
            raise ProductError(
                f"session {inp.id}: no readable CADU frame in {total['chunks']} chunk files "
                f"({total['empty_chunks']} empty, {total['corrupt']} corrupt frames, expected "
                f"spacecraft id {scid if scid is None else hex(scid)})")
        paths = tuple(str(c.path) for c in chunks)
        groups = {f"/measurements/vc{v:02d}": vc_dataset(int(v), frames, paths, frames_per_chunk)
                  for v in np.unique(frames.vcid)}
        tree = xr.DataTree.from_dict({
            "/": xr.Dataset(), "/measurements": xr.Dataset(), **groups,
            "/quality": quality_dataset(summary),
        })
        tree.attrs = {
            "stac_discovery": stac_discovery(inp.item, product_type_for(inp.item)),
            "other_metadata": {
                "eopf_category": "eoproduct",
                "cadip_session": _session_metadata(inp.item),
                "spacecraft_id": scid,
                "cadu_format": {
                    "sync_marker": SYNC_MARKER.hex().upper(), "cadu_length": CADU_LEN,
                    "frame_length": FRAME_LEN, "header_length": HEADER_LEN,
                    "payload_length": PAYLOAD_LEN, "counter_modulo": COUNTER_MODULO,
                },
                "cadu_quality": summary,
            },
        }
        return tree

    def main_variables(self, tree: xr.DataTree) -> Mapping[str, str]:
        if "measurements" not in tree.children:
            return {}
        return {name: f"measurements/{name}/data" for name in sorted(tree["measurements"].children)}


def _session_metadata(item: Mapping[str, Any]) -> dict[str, Any]:
    """The session's CADIP fields, without the ``cadip:`` prefix."""
    props = item.get("properties") or {}
    out: dict[str, Any] = {"session_id": item.get("id")}
    out.update({k.split(":", 1)[1]: v for k, v in props.items() if k.startswith("cadip:")})
    return out
