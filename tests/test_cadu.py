import numpy as np
import pytest

from rspy_batch.formats.cadu import (
    CADU_LEN,
    SPACECRAFT_IDS,
    SYNC_MARKER,
    encode_frames,
    iter_frames,
)


def test_encode_then_iter_roundtrip():
    data = encode_frames(SPACECRAFT_IDS["S1A"], 5, 0xFFFFFE, 4, np.random.default_rng(1))
    assert len(data) == 4 * CADU_LEN
    frames = list(iter_frames(data))
    assert [f.frame_count for f in frames] == [0xFFFFFE, 0xFFFFFF, 0, 1]  # 24-bit wrap
    assert {(f.spacecraft_id, f.vcid, f.sync_ok) for f in frames} == {(0x2A, 5, True)}
    assert [f.offset for f in frames] == [0, 1024, 2048, 3072]
    assert data[:4] == SYNC_MARKER and data[4] >> 6 == 0b01  # version 01


def test_payload_is_deterministic_and_corruption_is_visible():
    a = encode_frames(0x3B, 1, 10, 3, np.random.default_rng(7))
    assert a == encode_frames(0x3B, 1, 10, 3, np.random.default_rng(7))
    broken = bytearray(a)
    broken[CADU_LEN] ^= 0xFF
    flags = [f.sync_ok for f in iter_frames(bytes(broken) + b"partial")]
    assert flags == [True, False, True]  # trailing partial CADU ignored


def test_rejects_out_of_range_ids():
    with pytest.raises(ValueError):
        encode_frames(256, 1, 0, 1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        encode_frames(1, 64, 0, 1, np.random.default_rng(0))
