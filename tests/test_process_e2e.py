"""Each built-in processor end to end as a user runs it: simulator → ingest → stage →
``rspy-batch process``, values checked against the station's truth or plain numpy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import zarr
from conftest import make_simulator
from e2e import run_cli

from rspy_batch.catalog import layout
from rspy_batch.catalog.reader import iter_items, read_json
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.validate import validate_catalog

START, STOP = "2026-01-05", "2026-01-12"


@pytest.fixture
def sim(tmp_path: Path):
    sim = make_simulator(tmp_path / "sim")
    try:
        yield sim
    finally:
        sim.stop()
        os.environ.pop("RSPY_SECRETS_FILE", None)


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
