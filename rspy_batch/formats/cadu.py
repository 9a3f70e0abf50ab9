"""CADU (Channel Access Data Unit) framing as delivered in CADIP DSDB chunk files.

A CADU is the 4-byte attached sync marker followed by one transfer frame. The frame
starts with the 6-byte VCDU primary header (CCSDS 732.0-B):

    bits  0-1   transfer frame version, always 0b01 for a VCDU
    bits  2-9   spacecraft id (8 bits)
    bits 10-15  virtual channel id (6 bits)
    bits 16-39  virtual channel frame counter (24 bits, wraps)
    bits 40-47  signalling field (replay flag + spares; 0 here)

The rest of the frame is opaque payload. No Reed-Solomon trailer is modelled: the
simulator and the L0 processor only need sync, ids and counter continuity.

Spacecraft ids below are simulator choices, not the official CCSDS SANA
assignments: the high nibble names the mission (2 = Sentinel-1, 3 = Sentinel-2,
4 = Sentinel-3) and the low nibble the unit (A, B, C), so a hex dump is readable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

SYNC_MARKER = bytes.fromhex("1ACFFC1D")
SYNC_LEN = len(SYNC_MARKER)
FRAME_LEN = 1020  # transfer frame length, without the sync marker
CADU_LEN = SYNC_LEN + FRAME_LEN  # 1024
HEADER_LEN = 6
PAYLOAD_LEN = FRAME_LEN - HEADER_LEN
VERSION = 0b01
COUNTER_MODULO = 1 << 24

SPACECRAFT_IDS: dict[str, int] = {
    "S1A": 0x2A,
    "S1B": 0x2B,
    "S1C": 0x2C,
    "S2A": 0x3A,
    "S2B": 0x3B,
    "S2C": 0x3C,
    "S3A": 0x4A,
    "S3B": 0x4B,
}


@dataclass(frozen=True)
class Frame:
    """One CADU located in a byte stream."""

    offset: int  # byte offset of the sync marker in the stream
    spacecraft_id: int
    vcid: int
    frame_count: int
    sync_ok: bool


def encode_frames(
    spacecraft_id: int,
    vcid: int,
    first_counter: int,
    n: int,
    payload_rng: np.random.Generator,
) -> bytes:
    """Return ``n`` consecutive CADUs of one virtual channel.

    Counters run from ``first_counter`` (mod 2**24); payload bytes come from
    ``payload_rng`` so the output is reproducible from the generator's seed.
    """
    if not 0 <= spacecraft_id < 256:
        raise ValueError(f"spacecraft id {spacecraft_id} does not fit in 8 bits")
    if not 0 <= vcid < 64:
        raise ValueError(f"virtual channel id {vcid} does not fit in 6 bits")
    if n <= 0:
        return b""
    # Vectorised: building frames one by one dominates chunk generation time.
    out = np.empty((n, CADU_LEN), dtype=np.uint8)
    out[:, :SYNC_LEN] = np.frombuffer(SYNC_MARKER, dtype=np.uint8)
    word = (VERSION << 14) | (spacecraft_id << 6) | vcid
    out[:, SYNC_LEN] = word >> 8
    out[:, SYNC_LEN + 1] = word & 0xFF
    counters = (first_counter + np.arange(n, dtype=np.int64)) % COUNTER_MODULO
    out[:, SYNC_LEN + 2] = (counters >> 16) & 0xFF
    out[:, SYNC_LEN + 3] = (counters >> 8) & 0xFF
    out[:, SYNC_LEN + 4] = counters & 0xFF
    out[:, SYNC_LEN + 5] = 0
    out[:, SYNC_LEN + HEADER_LEN :] = payload_rng.integers(
        0, 256, size=(n, PAYLOAD_LEN), dtype=np.uint8
    )
    return out.tobytes()


def iter_frames(data: bytes) -> Iterator[Frame]:
    """Yield every whole CADU of ``data``, assuming CADU-aligned framing.

    A frame whose sync marker is wrong is still yielded (``sync_ok=False``) so
    that callers can count corrupted frames; a trailing partial CADU is ignored.
    """
    view = memoryview(data)
    for offset in range(0, len(data) - CADU_LEN + 1, CADU_LEN):
        sync_ok = view[offset : offset + SYNC_LEN] == SYNC_MARKER
        h = offset + SYNC_LEN
        word = (data[h] << 8) | data[h + 1]
        yield Frame(
            offset=offset,
            spacecraft_id=(word >> 6) & 0xFF,
            vcid=word & 0x3F,
            frame_count=(data[h + 2] << 16) | (data[h + 3] << 8) | data[h + 4],
            sync_ok=sync_ok,
        )


# -- vectorised parsing --------------------------------------------------------------------
#
# A DSDB chunk file is a sequence of CADUs that should start at byte 0 and follow each
# other every CADU_LEN bytes. The scanner walks that grid with strided numpy views and
# classifies every slot; it only searches byte by byte after losing sync. What counts as
# corrupt (each is one "corrupt frame"):
#
# * bad header: the sync marker is right but the version is not 0b01, or the spacecraft
#   id is not the expected one. Framing is trusted (the marker is there), so the scan
#   stays on the grid and the next slot is CADU_LEN further.
# * lost sync: the slot where a marker is expected does not hold one. The scanner searches
#   forward for the next *acceptable* marker (marker + version 0b01 + expected spacecraft
#   id, so a false lock on payload bytes is a 2**-42 per byte event; 2**-34 when no id is
#   expected). The L skipped bytes count as ceil(L / CADU_LEN) corrupt frames: a single
#   flipped marker in an otherwise intact stream is exactly one corrupt frame, and a region
#   that runs to the end of the stream is counted here, not as truncated.
# * truncated: fewer than CADU_LEN bytes left where a frame is due on the grid (a cut
#   file); at most one per stream.

# Grid slots examined per step: from _FIRST_SLOTS after a resync, doubling while the grid
# holds, so the slots looked at again after each resync are at most about as many as the
# slots that were good before it.
_FIRST_SLOTS = 64
_SCAN_SLOTS = 8192
_SEARCH_BYTES = 1 << 20  # window of the byte-wise marker search
_HEADER_END = SYNC_LEN + HEADER_LEN
_SYNC = np.frombuffer(SYNC_MARKER, dtype=np.uint8)


@dataclass(frozen=True)
class CaduScan:
    """The valid frames of one byte stream and what was wrong with the rest."""

    offsets: np.ndarray  # int64, byte offset of each valid frame's sync marker
    vcids: np.ndarray  # uint8
    counters: np.ndarray  # uint32, virtual channel frame counter
    size: int  # bytes scanned
    bad_header: int  # marker right, version or spacecraft id wrong
    lost_sync: int  # corrupt frames counted in regions without a usable marker
    lost_sync_bytes: int
    truncated: int  # 1 if the stream ends inside a CADU
    truncated_bytes: int

    @property
    def frames(self) -> int:
        return int(self.offsets.size)

    @property
    def corrupt(self) -> int:
        return self.bad_header + self.lost_sync + self.truncated


def _headers(buf: np.ndarray, start: int, slots: int, stride: int = CADU_LEN) -> np.ndarray:
    """``slots`` × 10 bytes (marker + VCDU header) at ``start``, ``start+stride``, …"""
    view = buf[start:]
    return np.lib.stride_tricks.as_strided(
        view, shape=(slots, _HEADER_END), strides=(stride * view.strides[0], view.strides[0]),
        writeable=False,
    )


def _sync_ok(headers: np.ndarray) -> np.ndarray:
    """Rows (marker + VCDU header bytes) that start with the sync marker."""
    ok = headers[:, 0] == _SYNC[0]
    for k in range(1, SYNC_LEN):
        ok &= headers[:, k] == _SYNC[k]
    return ok


def _decode(headers: np.ndarray, spacecraft_id: int | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(header ok, vcid, counter) of rows of marker + VCDU header bytes."""
    h = headers[:, SYNC_LEN : SYNC_LEN + 5].astype(np.uint32)
    word = (h[:, 0] << 8) | h[:, 1]
    header_ok = (word >> 14) == VERSION
    if spacecraft_id is not None:
        header_ok &= ((word >> 6) & 0xFF) == spacecraft_id
    counter = (h[:, 2] << 16) | (h[:, 3] << 8) | h[:, 4]
    return header_ok, (word & 0x3F).astype(np.uint8), counter


def _find_sync(buf: np.ndarray, start: int, spacecraft_id: int | None) -> int | None:
    """Offset of the first acceptable marker at or after ``start`` (with a whole header).

    The window starts at a few CADUs (a flipped marker resyncs one CADU later) and doubles,
    so a long corrupt region costs linear time.
    """
    n = buf.shape[0]
    pos, window = start, 4 * CADU_LEN
    while pos + _HEADER_END <= n:
        stop = min(n, pos + window + SYNC_LEN - 1)
        w = np.asarray(buf[pos:stop])
        hit = w[: w.size - SYNC_LEN + 1] == _SYNC[0]
        for k in range(1, SYNC_LEN):
            hit &= w[k : w.size - SYNC_LEN + 1 + k] == _SYNC[k]
        cand = pos + np.flatnonzero(hit)
        cand = cand[cand + _HEADER_END <= n]
        if cand.size:
            rows = np.asarray(buf)[cand[:, None] + np.arange(_HEADER_END)]
            header_ok = _decode(rows, spacecraft_id)[0]
            good = np.flatnonzero(header_ok)
            if good.size:
                return int(cand[good[0]])
        pos = stop - SYNC_LEN + 1
        window = min(2 * window, _SEARCH_BYTES)
    return None


def scan_cadus(buf: np.ndarray | bytes, spacecraft_id: int | None = None) -> CaduScan:
    """Classify the CADUs of a byte stream (bytes, or a uint8 array: ``np.memmap`` works).

    ``spacecraft_id`` None accepts any spacecraft id. The rules for corrupt frames are in
    the comment above; valid frames are returned in stream order.
    """
    if isinstance(buf, bytes | bytearray | memoryview):
        buf = np.frombuffer(buf, dtype=np.uint8)
    n = int(buf.shape[0])
    offsets: list[np.ndarray] = []
    vcids: list[np.ndarray] = []
    counters: list[np.ndarray] = []
    bad_header = lost_sync = lost_bytes = truncated = truncated_bytes = 0
    pos, step = 0, _FIRST_SLOTS
    while pos < n:
        slots = min((n - pos) // CADU_LEN, step)
        if slots == 0:  # a partial CADU ends the stream
            truncated, truncated_bytes = 1, n - pos
            break
        rows = _headers(buf, pos, slots)
        lost = np.flatnonzero(~_sync_ok(rows))
        on_grid = int(lost[0]) if lost.size else slots
        ok, vc, count = _decode(rows[:on_grid], spacecraft_id)
        offsets.append(pos + CADU_LEN * np.flatnonzero(ok).astype(np.int64))
        vcids.append(vc[ok])
        counters.append(count[ok])
        bad_header += int(on_grid - np.count_nonzero(ok))
        pos += on_grid * CADU_LEN
        if on_grid == slots:
            step = min(2 * step, _SCAN_SLOTS)
            continue
        step = _FIRST_SLOTS  # damage often comes in clusters: look ahead a little first
        found = _find_sync(buf, pos + 1, spacecraft_id)
        skipped = (found if found is not None else n) - pos
        lost_sync += -(-skipped // CADU_LEN)
        lost_bytes += skipped
        pos += skipped
    return CaduScan(
        offsets=np.concatenate(offsets) if offsets else np.zeros(0, np.int64),
        vcids=np.concatenate(vcids) if vcids else np.zeros(0, np.uint8),
        counters=np.concatenate(counters).astype(np.uint32) if counters
        else np.zeros(0, np.uint32),
        size=n, bad_header=bad_header, lost_sync=lost_sync, lost_sync_bytes=lost_bytes,
        truncated=truncated, truncated_bytes=truncated_bytes,
    )


def counter_steps(counters: np.ndarray) -> np.ndarray:
    """Frames missing before each frame after the first of one virtual channel stream.

    ``(c[i] - c[i-1] - 1) mod 2**24``: 0 where the counter continues (wrap included); a
    backwards jump (a replay or a counter reset) shows as a value >= 2**23.
    """
    c = np.asarray(counters, dtype=np.int64)
    return (c[1:] - c[:-1] - 1) % COUNTER_MODULO
