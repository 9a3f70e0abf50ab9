"""The process stage end to end with a third-party processor (``tests/plugins/toyproc.py``,
registered through an entry point): simulator → ingest → stage → process, the catalog as the
record, failures recorded, re-runs converging, Luigi and a real Dask scheduler."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
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
from rspy_batch.staging.state import is_staged

PLUGINS = Path(__file__).parent / "plugins"
COLLECTION = "auxip-s1a-aux-resorb"
OUT = f"{COLLECTION}-toy-bytes"
START, STOP = "2026-01-05", "2026-01-12"
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(PLUGINS),
                                                   os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def sim(simulator: object) -> object:
    return simulator


def process_cli(sim, catalog: Path, staging: Path, *extra: str):
    return run_cli("process", "--processor", "toy-bytes", "--collection", COLLECTION,
                   "--start", START, "--stop", STOP, "--catalog", str(catalog),
                   "--stations", str(sim.stations_file), "--staging", str(staging), *extra,
                   env=ENV)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "_rspy" not in p.parts and ".rspy-locks" not in p.parts}


def test_plugin_is_found_through_its_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    from rspy_batch.processing.registry import available, get_processor

    assert "toy-bytes" not in available()
    monkeypatch.syspath_prepend(str(PLUGINS))
    assert available()["toy-bytes"] == "toyproc:ToyBytes"
    assert get_processor("toy-bytes").version == "0.1.0"
    listing = run_cli("processors", env=ENV)
    assert listing.returncode == 0, listing.stderr
    assert "toy-bytes" in listing.stdout and "s2-l1c" in listing.stdout


def test_unknown_processor_is_a_config_error(sim, tmp_path: Path) -> None:
    result = run_cli("process", "--processor", "nope", "--collection", COLLECTION,
                     "--start", START, "--stop", STOP, "--catalog", str(tmp_path / "c"),
                     "--stations", str(sim.stations_file))
    assert result.returncode == 1
    assert "unknown processor 'nope'" in result.stderr


def test_process_end_to_end_and_rerun(sim, tmp_path: Path) -> None:
    catalog, staging = tmp_path / "catalog", tmp_path / "staging"
    result = process_cli(sim, catalog, staging)
    assert result.returncode == 0, result.stderr
    store = LocalStore(catalog)
    inputs = list(iter_items(store, COLLECTION))
    outputs = {item["id"]: item for item in iter_items(store, OUT)}
    assert inputs and all(is_staged(i) for i in inputs)
    window_inputs = {i["id"] for i in inputs}
    assert len(outputs) == len(window_inputs)

    derived: set[str] = set()
    for out in outputs.values():
        key = layout.item_key(OUT, out["id"], layout.item_datetime(out))
        links = [lk for lk in out["links"] if lk["rel"] == "derived_from"]
        assert len(links) == 1
        source = read_json(store, layout.resolve_href(key, links[0]["href"]))
        assert source is not None and source["id"] == links[0]["title"]
        derived.add(source["id"])
        props = out["properties"]
        assert props["processing:software"] == {"rspy-batch/toy-bytes": "0.1.0"}
        assert props["processing:level"] == "L-toy"
        assert props["product:type"] == "TOYBYTES_"
        assert props["datetime"] == source["properties"]["datetime"]
        assert out["id"].startswith("TOYBYTES__")
        # the product holds the histogram of the staged bytes (computed here with numpy)
        product = Path(out["assets"]["product"]["href"].removeprefix("file://"))
        assert out["assets"]["product"]["type"] == "application/vnd+zarr"
        raw = b"".join(Path(a["href"].removeprefix("file://")).read_bytes()
                       for _, a in sorted(source["assets"].items()))
        expected = np.bincount(np.frombuffer(raw, dtype="u1"), minlength=256)
        group = zarr.open_group(str(product), mode="r", zarr_format=2)
        np.testing.assert_array_equal(group["measurements/histogram"][:], expected)
        assert (product / ".zmetadata").is_file()
        attrs = group.attrs.asdict()
        assert attrs["stac_discovery"]["id"] == out["id"]
        assert attrs["processing_history"]["L-toy"][0]["inputs"] == [source["id"]]
        assert attrs["other_metadata"]["scheduler"].startswith("inproc://") or \
            attrs["other_metadata"]["scheduler"].startswith("tcp://127.0.0.1")
        thumb = Path(out["assets"]["thumbnail"]["href"].removeprefix("file://"))
        assert thumb.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert derived == window_inputs
    assert validate_catalog(store).ok

    before = snapshot(catalog), snapshot(staging)
    again = process_cli(sim, catalog, staging)
    assert again.returncode == 0, again.stderr
    assert (snapshot(catalog), snapshot(staging)) == before


def test_failed_product_is_recorded_and_blocks_nothing(sim, tmp_path: Path) -> None:
    catalog, staging = tmp_path / "catalog", tmp_path / "staging"
    first = process_cli(sim, catalog, staging, "--param", "fail_on=_20260107")
    store = LocalStore(catalog)
    inputs = {i["id"] for i in iter_items(store, COLLECTION)}
    doomed = {i for i in inputs if "_20260107" in i}
    assert doomed and doomed != inputs
    assert first.returncode == 3, first.stderr
    record = next(r for r in iter_records(store, "process", OUT))
    assert record.status == "failed"
    assert len(record.rejected) == len(doomed)
    assert all("ValueError: toy failure for" in r.reason for r in record.rejected)
    outputs = list(iter_items(store, OUT))
    assert {lk["title"] for o in outputs for lk in o["links"] if lk["rel"] == "derived_from"} \
        == inputs - doomed
    # no half-written product of a failed run is left behind
    products = {p.name for p in staging.rglob("*.zarr")}
    assert len(products) == len(outputs)
    status = run_cli("status", "--catalog", str(catalog), "--stage", "process", "--rejected")
    assert "toy failure for" in status.stdout + status.stderr
    assert validate_catalog(store).ok

    # a parameter is part of a product's identity: without it, all products are made anew
    second = process_cli(sim, catalog, staging)
    assert second.returncode == 0, second.stderr
    assert len(list(iter_items(store, OUT))) == len(outputs) + len(inputs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_luigi_module_and_dask_scheduler(sim, tmp_path: Path) -> None:
    """``luigi --module tasks.process`` on a separate Dask scheduler with one worker."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, **ENV}
    scheduler = subprocess.Popen([str(bin_dir / "dask"), "scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--dashboard-address", "127.0.0.1:0"],
                                 env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([str(bin_dir / "dask"), "worker", address, "--nthreads", "2",
                               "--dashboard-address", "127.0.0.1:0", "--host", "127.0.0.1"],
                              env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(1, timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        catalog, staging = tmp_path / "catalog", tmp_path / "staging"
        result = subprocess.run(
            [str(bin_dir / "luigi"), "--module", "tasks.process", "Process", "--local-scheduler",
             "--processor", "toy-bytes", "--collection", COLLECTION, "--start", START,
             "--stop", STOP, "--catalog", str(catalog), "--stations", str(sim.stations_file),
             "--staging", str(staging), "--dask-scheduler", address],
            capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parent.parent)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs = list(iter_items(LocalStore(catalog), OUT))
        assert outputs
        for out in outputs:
            product = out["assets"]["product"]["href"].removeprefix("file://")
            attrs = zarr.open_group(product, mode="r", zarr_format=2).attrs.asdict()
            assert attrs["other_metadata"]["scheduler"] == address
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_process_on_s3(sim, tmp_path: Path, s3_bucket: str) -> None:
    """Catalog, staged inputs and products all in the S3 server."""
    import boto3

    catalog, staging = f"s3://{s3_bucket}/catalog", f"s3://{s3_bucket}/staging"
    result = run_cli("process", "--processor", "toy-bytes", "--collection", COLLECTION,
                     "--start", START, "--stop", STOP, "--catalog", catalog,
                     "--stations", str(sim.stations_file), "--staging", staging, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    from rspy_batch.catalog.storage import open_store

    store = open_store(catalog)
    outputs = list(iter_items(store, OUT))
    assert outputs
    s3 = boto3.client("s3")
    for out in outputs:
        href = out["assets"]["product"]["href"]
        assert href.startswith(f"s3://{s3_bucket}/staging/{OUT}/")
        key = href.removeprefix(f"s3://{s3_bucket}/")
        zmeta = s3.get_object(Bucket=s3_bucket, Key=f"{key}/.zmetadata")["Body"].read()
        assert b'measurements/histogram/.zarray' in zmeta
        thumb = out["assets"]["thumbnail"]["href"].removeprefix(f"s3://{s3_bucket}/")
        assert s3.get_object(Bucket=s3_bucket, Key=thumb)["Body"].read()[:4] == b"\x89PNG"
    assert validate_catalog(store).ok
    assert "SECRET" not in result.stderr and os.environ["AWS_SECRET_ACCESS_KEY"] not in \
        result.stderr
