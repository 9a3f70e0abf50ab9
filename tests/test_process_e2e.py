"""Each built-in processor end to end as a user runs it: simulator → ingest → stage →
``rspy-batch process``, values checked against the station's truth or plain numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from e2e import run_cli

from rspy_batch.catalog import layout
from rspy_batch.catalog.reader import iter_items, read_json
from rspy_batch.catalog.records import iter_records
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.validate import validate_catalog

START, STOP = "2026-01-05", "2026-01-12"


@pytest.fixture
def sim(simulator: object) -> object:
    return simulator


def process(sim, tmp_path: Path, processor: str, collection: str, *extra: str
            ) -> tuple[LocalStore, list[dict]]:
    catalog, staging = tmp_path / "catalog", tmp_path / "staging"
    result = run_cli("process", "--processor", processor, "--collection", collection,
                     "--start", START, "--stop", STOP, "--catalog", str(catalog),
                     "--stations", str(sim.stations_file), "--staging", str(staging), *extra)
    assert result.returncode == 0, result.stderr[-4000:]
    store = LocalStore(catalog)
    outputs = list(iter_items(store, f"{collection}-{processor}"))
    assert outputs, result.stderr[-2000:]
    assert validate_catalog(store).ok
    return store, outputs


def source_of(store: LocalStore, collection: str, item: dict) -> dict:
    key = layout.item_key(collection, item["id"], layout.item_datetime(item))
    (link,) = [lk for lk in item["links"] if lk["rel"] == "derived_from"]
    source = read_json(store, layout.resolve_href(key, link["href"]))
    assert source is not None
    return source


def local(href: str) -> str:
    return href.removeprefix("file://")


def test_cadu_l0_sessions_match_station_truth(sim, tmp_path: Path) -> None:
    collection = "cadip-s1a-mti"
    store, outputs = process(sim, tmp_path, "cadu-l0", collection)
    truth = {s["SessionId"]: s for s in sim.truth("mti") if "SessionId" in s}
    for out in outputs:
        source = source_of(store, f"{collection}-cadu-l0", out)
        session = truth[source["id"]]
        assert out["properties"]["product:type"] == "S01RAWL0_"
        assert out["id"].startswith("S01RAWL0__")
        group = zarr.open_group(local(out["assets"]["product"]["href"]), mode="r")
        quality = group.attrs["other_metadata"]["cadu_quality"]
        by_name = {f["Name"]: f for f in session["Files"]}
        assert set(quality["chunks"]) == set(by_name)
        for name, got in quality["chunks"].items():
            assert got["frames"] == by_name[name]["_frames"], name
            assert got["gaps"] == len(by_name[name]["_gaps"]), name
        assert quality["total"]["frames"] == sum(f["_frames"] for f in session["Files"])
        assert out["properties"]["start_datetime"] == source["properties"]["start_datetime"]
        assert out["geometry"] is None and "bbox" not in out


def staged_input(source: dict) -> zarr.Group:
    """The staged input product, read raw (zarr, no xarray decoding)."""
    (asset,) = source["assets"].values()
    store = zarr.storage.ZipStore(local(asset["href"]), mode="r")
    return zarr.open_group(store, mode="r")


def decode(arr: zarr.Array) -> np.ndarray:
    raw = arr[:]
    value = raw * float(arr.attrs.get("scale_factor", 1.0)) + float(arr.attrs.get("add_offset",
                                                                                  0.0))
    return np.where(raw == arr.fill_value, np.nan, value)


def ndvi(raw: zarr.Group) -> np.ndarray:
    red = decode(raw["measurements/reflectance/r10m/b04"])
    nir = decode(raw["measurements/reflectance/r10m/b08"])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((red > 0) & (nir > 0), (nir - red) / (nir + red), np.nan)


def test_s2_l1c_end_to_end(sim, tmp_path: Path) -> None:
    collection = "prip-s2b-msil1c"
    store, outputs = process(sim, tmp_path, "s2-l1c", collection)
    for out in outputs:
        source = source_of(store, f"{collection}-s2-l1c", out)
        raw_in = staged_input(source)
        raw_out = zarr.open_group(local(out["assets"]["product"]["href"]), mode="r")
        expected = ndvi(raw_in)
        got = decode(raw_out["measurements/indices/r10m/ndvi"])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, atol=0.6e-4, equal_nan=True)
        b04 = decode(raw_in["measurements/reflectance/r10m/b04"])
        np.testing.assert_allclose(decode(raw_out["measurements/reflectance/r10m/b04"]), b04,
                                   atol=1e-6, equal_nan=True)
        props = out["properties"]
        assert props["product:type"] == "S02MSIL2A" and props["processing:level"] == "L2A-like"
        assert props["platform"] == source["properties"]["platform"]
        assert out["bbox"] and out["geometry"]["type"] == "Polygon"
        assert {"ndvi", "thumbnail", "product"} <= set(out["assets"])
        assert raw_out.attrs["other_metadata"]["reflectance_type"] == "TOA"


def test_s1_grd_end_to_end(sim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    import test_process_s1
    from test_process_s1 import check_against_numpy

    # station products have their own names; the reference only needs the polarisation
    monkeypatch.setattr(test_process_s1, "CHILD", re.compile(r"^S01SIWGRD_.*_(VV|VH)$"))

    collection = "prip-s1a-iw-grd"
    store, outputs = process(sim, tmp_path, "s1-grd", collection, "--param", "multilook=2")
    for out in outputs:
        source = source_of(store, f"{collection}-s1-grd", out)
        raw_out = zarr.open_group(local(out["assets"]["product"]["href"]), mode="r")
        check_against_numpy(staged_input(source), raw_out, 2)
        assert out["properties"]["product:type"] == "S01SIWSG0"
        assert out["properties"]["sar:instrument_mode"] == "IW"


def test_s3_olci_end_to_end(sim, tmp_path: Path) -> None:
    collection = "prip-s3a-ol-efr"
    store, outputs = process(sim, tmp_path, "s3-olci", collection)
    for out in outputs:
        source = source_of(store, f"{collection}-s3-olci", out)
        raw_in = staged_input(source)
        raw_out = zarr.open_group(local(out["assets"]["product"]["href"]), mode="r")
        tie = raw_in["conditions/geometry/sza"]
        grid = decode(tie)
        ac, al = int(tie.attrs["ac_subsampling_factor"]), int(tie.attrs["al_subsampling_factor"])
        radiance = decode(raw_in["measurements/oa08_radiance"])
        rows, cols = radiance.shape
        along = np.stack([np.interp(np.arange(cols), np.arange(grid.shape[1]) * ac, r)
                          for r in grid])
        sza = np.stack([np.interp(np.arange(rows), np.arange(grid.shape[0]) * al, along[:, j])
                        for j in range(cols)], axis=1)
        detector = raw_in["conditions/image/detector_index"][:]
        f0 = raw_in["conditions/instrument/solar_flux"][:][7][detector]
        flags = raw_in["quality/quality_flags"]
        invalid = flags.attrs["flag_masks"][flags.attrs["flag_meanings"].split().index("invalid")]
        expected = np.where(flags[:] & invalid, np.nan,
                            np.pi * radiance / (f0 * np.cos(np.deg2rad(sza))))
        got = decode(raw_out["measurements/oa08_reflectance"])
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, atol=1.01e-4, equal_nan=True)
        assert out["properties"]["product:type"] == "S03OLCRFL"


@pytest.mark.timeout(1200)  # the first use builds the eopf venv
def test_eopf_cpm_end_to_end(sim, tmp_path: Path) -> None:
    collection = "prip-s2b-msil1c"
    store, outputs = process(sim, tmp_path, "eopf-cpm", collection)
    for out in outputs:
        source = source_of(store, f"{collection}-eopf-cpm", out)
        raw_out = zarr.open_group(local(out["assets"]["product"]["href"]), mode="r")
        got = raw_out["measurements/ndvi"][:]
        np.testing.assert_allclose(got, ndvi(staged_input(source)), atol=1e-6, equal_nan=True)
        assert out["properties"]["processing:software"] == {"rspy-batch/eopf-cpm": "2.8.1"}
        assert raw_out.attrs["stac_discovery"]["id"] == out["id"]


def test_mixed_lta_collection_processes_only_its_own_inputs(sim, tmp_path: Path) -> None:
    """The LTA's EOPF collection mixes missions: s2-l1c takes the S2 products and leaves
    the S1 ones alone (not failed), and the window still counts as complete."""
    catalog, staging = tmp_path / "catalog", tmp_path / "staging"
    args = ("--collection", "lta-eopf-zarr", "--start", "2026-01-01", "--stop", "2026-01-26",
            "--catalog", str(catalog), "--stations", str(sim.stations_file),
            "--staging", str(staging))
    result = run_cli("process", "--processor", "s2-l1c", *args)
    assert result.returncode == 0, result.stderr[-4000:]
    store = LocalStore(catalog)
    inputs = list(iter_items(store, "lta-eopf-zarr"))
    types = sorted(i["properties"]["product:type"] for i in inputs)
    assert types == ["IW_GRDH_1S", "S2MSI1C"]
    outputs = list(iter_items(store, "lta-eopf-zarr-s2-l1c"))
    assert len(outputs) == 1
    source = source_of(store, "lta-eopf-zarr-s2-l1c", outputs[0])
    assert source["properties"]["product:type"] == "S2MSI1C"
    records = list(iter_records(store, "process", "lta-eopf-zarr-s2-l1c"))
    assert all(r.status == "complete" and not r.rejected for r in records)
    assert sum(r.counts["other_inputs"] for r in records) == 1
    again = run_cli("process", "--processor", "s2-l1c", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    # every window is complete although its S1 input has no product: nothing runs again
    assert "complete ones were encountered" in again.stderr
    assert "ran successfully" not in again.stderr
    assert list(iter_items(store, "lta-eopf-zarr-s2-l1c")) == outputs
