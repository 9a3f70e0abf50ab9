"""cadu-l0: CADU chunk files of one CADIP session → L0 product, checked against an
independent byte-by-byte decoder written here and against the station simulator's truth."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import zarr
from conftest import make_simulator

from rspy_batch.formats.cadu import CADU_LEN, encode_frames, scan_cadus
from rspy_batch.mapping.cadip import session_to_item
from rspy_batch.processing.base import OutputTarget, ProductInput
from rspy_batch.processing.processors.cadu_l0 import CaduL0Processor
from rspy_batch.processing.product import ProductError

S1A = 0x2A
MARKER = bytes.fromhex("1ACFFC1D")
MOD = 1 << 24


# -- an independent decoder: plain Python over the bytes, following the documented rules ---
def naive_decode(data: bytes, scid: int) -> tuple[list[tuple[int, int, bytes]], int]:
    """(vcid, counter, payload) of every valid frame, and the number of corrupt frames."""

    def header_ok(p: int) -> bool:
        word = data[p + 4] * 256 + data[p + 5]
        return word >> 14 == 1 and (word >> 6) & 0xFF == scid

    frames, corrupt, pos = [], 0, 0
    while pos < len(data):
        if len(data) - pos < CADU_LEN:  # truncated trailing frame
            corrupt += 1
            break
        if data[pos:pos + 4] == MARKER:
            if header_ok(pos):
                frames.append((data[pos + 5] & 0x3F, int.from_bytes(data[pos + 6:pos + 9], "big"),
                               data[pos + 10:pos + CADU_LEN]))
            else:
                corrupt += 1
            pos += CADU_LEN
            continue
        q = pos + 1  # lost sync: next marker with a valid header
        while q + 10 <= len(data) and not (data[q:q + 4] == MARKER and header_ok(q)):
            q += 1
        q = q if q + 10 <= len(data) else len(data)
        corrupt += (q - pos + CADU_LEN - 1) // CADU_LEN
        pos = q
    return frames, corrupt


def naive_session(files: list[tuple[int, bytes]], scid: int) -> dict[str, Any]:
    """Per VC: payloads, counters, gaps, missing; per file: frames, corrupt, gaps, missing."""
    vcs: dict[int, dict[str, Any]] = {}
    per_file, last = [], {}
    for channel, data in files:
        frames, corrupt = naive_decode(data, scid)
        gaps = missing = 0
        for vcid, counter, payload in frames:
            vc = vcs.setdefault(vcid, {"payload": b"", "counters": [], "gaps": 0, "missing": 0})
            vc["payload"] += payload
            vc["counters"].append(counter)
            prev = last.get((channel, vcid))
            if prev is not None and counter != (prev + 1) % MOD:
                step = (counter - prev - 1) % MOD
                vc["gaps"] += 1
                vc["missing"] += step
                gaps += 1
                missing += step
            last[(channel, vcid)] = counter
        per_file.append({"frames": len(frames), "corrupt": corrupt, "gaps": gaps,
                         "missing": missing})
    return {"vcs": vcs, "files": per_file}


# -- building sessions ------------------------------------------------------------------------
def cadus(vcid: int, first: int, n: int, rng: np.random.Generator, scid: int = S1A) -> bytes:
    return encode_frames(scid, vcid, first, n, rng)


def session_item(names: Mapping[str, tuple[int, int]], platform: str = "sentinel-1a"
                 ) -> dict[str, Any]:
    """A minimal CADIP session item, shaped as ``mapping.cadip.session_to_item`` makes it."""
    return {
        "type": "Feature", "stac_version": "1.1.0", "id": "S1A_20260105101500000000",
        "geometry": None,
        "properties": {
            "datetime": "2026-01-05T10:15:00Z", "start_datetime": "2026-01-05T10:15:00Z",
            "end_datetime": "2026-01-05T10:27:30Z", "platform": platform,
            "constellation": platform[:-1], "sat:absolute_orbit": 62001,
            "cadip:acquisition_id": "62001_1", "cadip:num_channels": 2,
        },
        "assets": {name: {"href": f"https://station/Files({i})/$value", "roles": ["cadu"],
                          "cadip:channel": ch, "cadip:block_number": block}
                   for i, (name, (ch, block)) in enumerate(names.items())},
        "links": [],
    }


def write_session(tmp_path: Path, blocks: dict[tuple[int, int], bytes]) -> ProductInput:
    names = {f"DCS_01_S1A_20260105101500000000_ch{ch}_DSDB_{b:05d}.raw": (ch, b)
             for ch, b in blocks}
    files = {}
    for name, key in reversed(list(names.items())):  # staged order must not matter
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blocks[key])
        files[name] = path
    return ProductInput(session_item(names), files)


def target(tmp_path: Path) -> OutputTarget:
    return OutputTarget(url=str(tmp_path / "out.zarr"), product_id="S01RAWL0__TEST",
                        properties={"processing:level": "L0"}, processing_history={})


def flip_sync(data: bytes, frame: int) -> bytes:
    out = bytearray(data)
    out[frame * CADU_LEN] ^= 0xFF
    return bytes(out)


def eventful_blocks() -> dict[tuple[int, int], bytes]:
    """Two channels, VCIDs 3 and 5 interleaved, with every kind of damage.

    By construction: VC3 17 frames, 2 gaps (5 dropped, 1 lost to a flipped marker),
    VC5 9 frames and a counter wrap that is no gap, 6 corrupt frames.
    """
    rng = np.random.default_rng(2026)
    ch1_b1 = cadus(3, 0, 4, rng) + cadus(5, MOD - 3, 3, rng) + cadus(3, 4, 4, rng)
    flipped = flip_sync(cadus(3, 16, 1, rng), 0)
    ch1_b2 = (cadus(5, 0, 4, rng) + cadus(3, 13, 3, rng)  # counters 8..12 dropped
              + flipped + cadus(3, 17, 2, rng)  # 16 unreadable: a gap of 1
              + cadus(5, 4, 1, rng)[:500])  # truncated tail
    ch2_b1 = (cadus(3, 100, 4, rng)  # channel 2 has its own counters: no gap
              + cadus(5, 7, 1, rng, scid=0x3B)  # another spacecraft: bad header
              + cadus(5, 50, 2, rng))
    garbage = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    assert MARKER not in garbage
    return {(1, 1): ch1_b1, (1, 2): ch1_b2, (2, 1): ch2_b1, (2, 2): b"", (2, 3): garbage}


def test_session_counts_and_payloads(tmp_path: Path) -> None:
    blocks = eventful_blocks()
    inp = write_session(tmp_path, blocks)
    proc = CaduL0Processor()
    tree = proc.produce([inp], target(tmp_path), frames_per_chunk=4)
    want = naive_session([(ch, blocks[(ch, b)]) for ch, b in sorted(blocks)], S1A)

    # construction-level facts, so the naive decoder itself is checked too
    assert {v: len(x["counters"]) for v, x in want["vcs"].items()} == {3: 17, 5: 9}
    assert (want["vcs"][3]["gaps"], want["vcs"][3]["missing"]) == (2, 6)
    assert (want["vcs"][5]["gaps"], want["vcs"][5]["missing"]) == (0, 0)
    assert [f["corrupt"] for f in want["files"]] == [0, 2, 1, 0, 3]

    g = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    assert sorted(g["measurements"].group_keys()) == ["vc03", "vc05"]
    for vcid, vc in want["vcs"].items():
        grp = g[f"measurements/vc{vcid:02d}"]
        data = grp["data"]
        assert data.dtype == np.uint8 and data.chunks == (4, 1014)
        assert data.shape == (len(vc["counters"]), 1014)
        assert data[:].tobytes() == vc["payload"]
        assert grp["frame_count"][:].tolist() == vc["counters"]
    # VC5 crosses the 24-bit wrap without a gap
    assert g["measurements/vc05/frame_count"][:7].tolist() == [MOD - 3, MOD - 2, MOD - 1,
                                                               0, 1, 2, 3]
    assert g["measurements/vc03/channel"][:].tolist() == [1] * 13 + [2] * 4

    q = g["quality"]
    assert q["vcid"][:].tolist() == [3, 5]
    assert q["frames"][:].tolist() == [len(want["vcs"][v]["counters"]) for v in (3, 5)]
    assert q["gaps"][:].tolist() == [want["vcs"][v]["gaps"] for v in (3, 5)]
    assert q["missing_frames"][:].tolist() == [want["vcs"][v]["missing"] for v in (3, 5)]
    for field, key in (("frames", "frames"), ("corrupt", "corrupt"), ("gaps", "gaps"),
                       ("missing_frames", "missing")):
        assert q[f"chunk_{field}"][:].tolist() == [f[key] for f in want["files"]], field
    assert q["chunk_bytes"][:].tolist() == [len(blocks[k]) for k in sorted(blocks)]
    assert q["chunk_truncated_bytes"][:].tolist() == [0, 500, 0, 0, 0]

    summary = g.attrs["other_metadata"]["cadu_quality"]
    assert summary["vc03"] == {"frames": 17, "gaps": 2, "missing_frames": 6,
                               "counter_resets": 0}
    assert summary["vc05"]["frames"] == 9 and summary["vc05"]["gaps"] == 0
    assert summary["total"]["frames"] == 26 and summary["total"]["corrupt"] == 6
    assert summary["total"]["empty_chunks"] == 1
    assert summary["total"]["chunks_without_frames"] == 2
    chunks = list(summary["chunks"].values())
    assert [(c["channel"], c["block"]) for c in chunks] == sorted(blocks)
    assert [(c["bad_header"], c["lost_sync"], c["truncated"]) for c in chunks] == [
        (0, 0, 0), (0, 1, 1), (1, 0, 0), (0, 0, 0), (0, 3, 0)]

    stac = g.attrs["stac_discovery"]
    assert stac["geometry"] is None and "bbox" not in stac
    props = stac["properties"]
    assert props["product:type"] == "S01RAWL0_" and props["platform"] == "sentinel-1a"
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2026-01-05T10:15:00Z", "2026-01-05T10:27:30Z")
    assert stac["id"] == "S01RAWL0__TEST"
    assert proc.main_variables(tree) == {"vc03": "measurements/vc03/data",
                                         "vc05": "measurements/vc05/data"}


def test_backward_counter_is_a_reset_not_missing_frames(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    inp = write_session(tmp_path, {(1, 1): cadus(1, 10, 2, rng) + cadus(1, 5, 2, rng)
                                   + cadus(1, 9, 1, rng)})
    tree = CaduL0Processor().run([inp], frames_per_chunk=2)
    summary = tree.attrs["other_metadata"]["cadu_quality"]
    # 10, 11, 5 (back), 6, 9 (2 missing)
    assert summary["vc01"] == {"frames": 5, "gaps": 1, "missing_frames": 2, "counter_resets": 1}


def test_session_without_readable_frames_is_an_error(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    other_spacecraft = cadus(2, 0, 3, rng, scid=0x3B)
    inp = write_session(tmp_path, {(1, 1): b"", (1, 2): other_spacecraft, (2, 1): b"\x1a" * 99})
    with pytest.raises(ProductError, match="no readable CADU frame in 3 chunk files"):
        CaduL0Processor().produce([inp], target(tmp_path))
    assert not (tmp_path / "out.zarr").exists()


def test_resync_after_inserted_bytes_and_false_markers() -> None:
    rng = np.random.default_rng(9)
    good = cadus(4, 0, 6, rng)
    # 100 stray bytes between frames 2 and 3: one corrupt frame, every real frame kept
    inserted = good[:2 * CADU_LEN] + bytes(100) + good[2 * CADU_LEN:]
    scan = scan_cadus(inserted, S1A)
    assert scan.counters.tolist() == list(range(6)) and scan.lost_sync_bytes == 100
    assert (scan.lost_sync, scan.corrupt) == (1, 1)
    assert scan.offsets.tolist() == [0, 1024, 2148, 3172, 4196, 5220]
    # a marker inside a corrupt frame's payload, followed by a wrong version, is not a lock
    broken = bytearray(flip_sync(good, 1))
    broken[CADU_LEN + 300:CADU_LEN + 306] = MARKER + b"\x00\x00"
    scan = scan_cadus(bytes(broken), S1A)
    assert scan.counters.tolist() == [0, 2, 3, 4, 5] and scan.corrupt == 1
    assert naive_decode(bytes(broken), S1A)[1] == 1
    # without an expected spacecraft id, any id passes
    assert scan_cadus(cadus(4, 0, 2, rng, scid=0x4B)).frames == 2
    assert scan_cadus(cadus(4, 0, 2, rng, scid=0x4B), S1A).bad_header == 2


# -- against the station simulator -----------------------------------------------------------
def test_simulator_session_matches_truth(tmp_path: Path) -> None:
    sim = make_simulator(tmp_path / "sim", cadu_chunk_bytes=32 * CADU_LEN)
    try:
        truth = sim.truth("mti")
        session = max(truth, key=lambda s: sum(len(f["_gaps"]) for f in s["Files"]))
        assert sum(len(f["_gaps"]) for f in session["Files"]) > 0
        station = sim.stations["mti"]
        creds = sim.app.credentials["mti"]
        token = requests.post(station["token_url"], timeout=10, data={
            "grant_type": "password", "client_id": creds.client_id,
            "client_secret": creds.client_secret, "username": creds.username,
            "password": creds.password}).json()["access_token"]
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        body = http.get(station["url"] + "Sessions", timeout=10, params={
            "$filter": f"SessionId eq '{session['SessionId']}'", "$expand": "Files"}).json()
        entity = (body if isinstance(body, list) else body["value"])[0]
        item = session_to_item(entity, station_id="mti", station_url=station["url"])
        files = {}
        for key, asset in item["assets"].items():
            resp = http.get(asset["href"], timeout=10)
            assert resp.status_code == 200
            files[key] = tmp_path / "in" / key
            files[key].parent.mkdir(parents=True, exist_ok=True)
            files[key].write_bytes(resp.content)
    finally:
        sim.stop()
        os.environ.pop("RSPY_SECRETS_FILE", None)

    CaduL0Processor().produce([ProductInput(item, files)], target(tmp_path))
    g = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    meta = g.attrs["other_metadata"]
    by_name = {f["Name"]: f for f in session["Files"]}
    assert meta["spacecraft_id"] == {f["_spacecraft_id"] for f in session["Files"]}.pop()
    assert set(meta["cadu_quality"]["chunks"]) == set(by_name)
    for name, got in meta["cadu_quality"]["chunks"].items():
        f = by_name[name]
        assert got["frames"] == f["_frames"], name
        assert got["gaps"] == len(f["_gaps"]), name
        assert got["missing_frames"] == sum((g_["actual"] - g_["expected"]) % MOD
                                            for g_ in f["_gaps"]), name
        assert got["corrupt"] == 0
    gaps_per_vc: dict[int, int] = {}
    for f in session["Files"]:
        for gap in f["_gaps"]:
            gaps_per_vc[gap["vcid"]] = gaps_per_vc.get(gap["vcid"], 0) + 1
    q = g["quality"]
    got = dict(zip(q["vcid"][:].tolist(), q["gaps"][:].tolist(), strict=True))
    assert {v: n for v, n in got.items() if n} == gaps_per_vc
    assert int(q["frames"][:].sum()) == sum(f["_frames"] for f in session["Files"])
    assert g.attrs["stac_discovery"]["properties"]["start_datetime"].startswith(
        session["DownlinkStart"][:19])
