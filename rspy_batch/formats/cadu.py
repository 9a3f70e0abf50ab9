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
