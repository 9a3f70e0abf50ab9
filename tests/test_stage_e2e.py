"""Staging end to end: simulator → ingest → stage into a moto S3 server, with faults."""

from __future__ import annotations

import hashlib
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
import requests
import yaml
from conftest import make_simulator
from e2e import popen_cli, run_cli

from rspy_batch.catalog.reader import iter_items
from rspy_batch.catalog.records import iter_records, now, window_id
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.mapping.common import iso
from rspy_batch.simulator.faults import FaultSpec
from rspy_batch.staging.stage import window_items
from rspy_batch.staging.state import is_staged, is_staged_asset, station_href
from rspy_batch.windows import split_windows

START, STOP = "2026-01-01", "2026-01-04"
JAN1, JAN4 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC)


def station_get(sim, url: str) -> bytes:
    """The bytes the station serves for ``url``, fetched with plain requests."""
    doc = yaml.safe_load(sim.stations_file.read_text())
    station_id = url.split("/")[3]
    auth = doc["stations"][station_id]["auth"]
    token = requests.post(auth["token_url"], data={
        "grant_type": "password", "client_id": auth["client_id"],
        "username": auth["username"],
        "client_secret": sim.credentials[auth["client_secret_env"]],
        "password": sim.credentials[auth["password_env"]]}, timeout=10).json()["access_token"]
    resp = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    resp.raise_for_status()
    return resp.content


def s3_objects(bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def stage_cli(sim, catalog: Path, staging: str, *extra: str, collection: str = "all",
              start: str = START, stop: str = STOP):
    return run_cli("stage", "--collection", collection, "--start", start, "--stop", stop,
                   "--catalog", str(catalog), "--stations", str(sim.stations_file),
                   "--staging", staging, *extra)


def test_every_station_kind_staged_bytes_equal(tmp_path: Path, s3_bucket: str) -> None:
    sim = make_simulator(tmp_path, order_delay=0.5, redirect="other")
    try:
        catalog = tmp_path / "catalog"
        res = stage_cli(sim, catalog, f"s3://{s3_bucket}/staging")
        assert res.returncode == 0, res.stderr
        store = LocalStore(catalog)
        assert validate_catalog(store).ok
        objects = s3_objects(s3_bucket, "staging/")
        truth = {e["Id"]: e for sid in ("adgs", "s1a", "s2b", "s3a", "lta")
                 for e in sim.truth(sid)}
        staged_files = 0
        collections = [r.collection for r in iter_records(store, "ingest")]
        assert {c.split("-")[0] for c in collections} == {"cadip", "auxip", "prip", "lta"}
        for cid in set(collections):
            items = list(iter_items(store, cid))
            assert items, cid
            for item in items:
                assert is_staged(item), item["id"]
                dt = item["properties"]["datetime"]
                for name, asset in item["assets"].items():
                    key = f"staging/{cid}/{dt[:4]}/{dt[5:7]}/{item['id']}/{name}"
                    assert asset["href"] == f"s3://{s3_bucket}/{key}"
                    data = objects[key]
                    assert len(data) == asset["file:size"]
                    md5 = hashlib.md5(data).hexdigest()
                    assert asset["file:checksum"] == "d510" + md5
                    if cid.startswith("cadip"):
                        assert data == station_get(sim, station_href(asset))
                    else:
                        entity = truth[item["properties"][f"{cid.split('-')[0]}:id"]]
                        assert (md5, len(data)) == (entity["_md5"], entity["_size"])
                    staged_files += 1
        assert staged_files == len(objects)  # nothing else was written
        assert sim.stats()["auth_leaks"] == 0  # nsg's redirect to 127.0.0.2 got no token
        # A second run downloads nothing and changes nothing.
        before = {p: p.read_bytes() for p in catalog.rglob("*.json") if "_rspy" not in p.parts}
        res = stage_cli(sim, catalog, f"s3://{s3_bucket}/staging")
        assert res.returncode == 0, res.stderr
        after = {p: p.read_bytes() for p in catalog.rglob("*.json") if "_rspy" not in p.parts}
        assert after == before
        # Re-ingesting keeps the staged hrefs.
        res = run_cli("ingest", "--collection", "all", "--start", START, "--stop", STOP,
                      "--catalog", str(catalog), "--stations", str(sim.stations_file),
                      "--force")
        assert res.returncode == 0, res.stderr
        assert all(is_staged(it) for cid in set(collections) for it in iter_items(store, cid))
    finally:
        sim.stop()


def test_large_file_goes_multipart(tmp_path: Path, s3_bucket: str) -> None:
    # SAFE products, whose size is product_bytes (EOPF ones follow eopf_size)
    sim = make_simulator(tmp_path, scale=0.0, station_scale={"s1a": 0.1},
                         product_bytes=13 * 1024 * 1024, eopf_scale=0)
    try:
        res = stage_cli(sim, tmp_path / "catalog", f"s3://{s3_bucket}/big",
                        collection="prip-s1a-iw-raw", stop="2026-01-08")
        assert res.returncode == 0, res.stderr
        s3 = boto3.client("s3")
        objects = s3_objects(s3_bucket, "big/")
        assert objects
        truth = {e["_md5"]: e for e in sim.truth("s1a")}
        for key, data in objects.items():
            assert hashlib.md5(data).hexdigest() in truth
            assert "-2" in s3.head_object(Bucket=s3_bucket, Key=key)["ETag"]  # two parts
    finally:
        sim.stop()


def test_transient_faults_end_with_correct_bytes(tmp_path: Path, s3_bucket: str) -> None:
    sim = make_simulator(tmp_path, faults=FaultSpec.parse("truncate=0.3,http-5xx=0.2"))
    try:
        catalog = tmp_path / "catalog"
        res = stage_cli(sim, catalog, f"s3://{s3_bucket}/s", collection="prip-s1a-iw-raw")
        assert res.returncode == 0, res.stderr
        assert sim.stats()["faults"].get("truncate", 0) > 0
        truth = {e["Id"]: e for e in sim.truth("s1a")}
        objects = s3_objects(s3_bucket, "s/")
        items = list(iter_items(LocalStore(catalog), "prip-s1a-iw-raw"))
        assert len(objects) == len(items) > 0
        for item in items:
            (asset,) = item["assets"].values()
            data = objects[asset["href"].split("/", 3)[3]]
            entity = truth[item["properties"]["prip:id"]]
            assert hashlib.md5(data).hexdigest() == entity["_md5"]
    finally:
        sim.stop()


def test_wrong_checksum_is_recorded_never_staged(tmp_path: Path, s3_bucket: str) -> None:
    sim = make_simulator(tmp_path, faults=FaultSpec.parse("bad-checksum=0.4"),
                         station_scale={"adgs": 1.0})
    try:
        catalog = tmp_path / "catalog"
        res = stage_cli(sim, catalog, f"s3://{s3_bucket}/s", "--workers", "2",
                        collection="auxip-s1a-aux-resorb", stop="2026-01-08")
        assert res.returncode == 3, res.stderr  # done, with failed files
        store = LocalStore(catalog)
        bad = {e["Name"] for e in sim.truth("adgs") if "bad-checksum" in e["_faults"]}
        failures = {rej.entity.split("/", 1)[1]: rej.reason
                    for r in iter_records(store, "stage") for rej in r.rejected}
        items = list(iter_items(store, "auxip-s1a-aux-resorb"))
        expected_bad = {n for it in items for n in it["assets"] if n in bad}
        assert expected_bad and set(failures) == expected_bad
        assert all("checksum mismatch" in reason for reason in failures.values())
        objects = s3_objects(s3_bucket, "s/")
        for item in items:
            for name, asset in item["assets"].items():
                if name in bad:
                    assert not is_staged_asset(asset) and asset["href"].startswith("http")
                    assert not any(k.endswith("/" + name) for k in objects)
                else:
                    assert is_staged_asset(asset)
        status = run_cli("status", "--catalog", str(catalog), "--stage", "stage", "--rejected")
        assert "checksum mismatch" in status.stdout
        assert validate_catalog(store).ok
    finally:
        sim.stop()


def test_lta_order_that_never_completes(tmp_path: Path, s3_bucket: str) -> None:
    sim = make_simulator(tmp_path, order_delay=3600)
    try:
        catalog = tmp_path / "catalog"
        res = stage_cli(sim, catalog, f"s3://{s3_bucket}/s", "--order-timeout", "1",
                        collection="lta-s1a-iw-raw", stop="2026-01-04")
        assert res.returncode == 3, res.stderr
        reasons = [rej.reason for r in iter_records(LocalStore(catalog), "stage")
                   for rej in r.rejected]
        assert reasons and all("not completed after 1 s" in r for r in reasons)
        assert s3_objects(s3_bucket, "s/") == {}
    finally:
        sim.stop()


def test_unsafe_file_name_is_confined(tmp_path: Path) -> None:
    """An asset name that slipped into the catalog (written by hand, an older tool) is
    still refused by staging: nothing is written outside the item's prefix."""
    from rspy_batch.catalog.writer import CatalogWriter
    from rspy_batch.staging.sinks import LocalSink
    from rspy_batch.staging.stage import stage_window
    from rspy_batch.stations.config import load_stations
    from rspy_batch.templates import get_template

    sim = make_simulator(tmp_path)
    try:
        catalog = tmp_path / "catalog"
        assert run_cli("ingest", "--collection", "prip-s1a-iw-raw", "--start", START, "--stop",
                       "2026-01-02", "--catalog", str(catalog), "--stations",
                       str(sim.stations_file)).returncode == 0
        store = LocalStore(catalog)
        item = next(iter_items(store, "prip-s1a-iw-raw"))
        (name, asset), = item["assets"].items()
        item["assets"] = {"../../../escaped.zip": asset}
        CatalogWriter(store).upsert_items("prip-s1a-iw-raw", [item])
        staging = tmp_path / "staging" / "area"
        record = stage_window(get_template("prip-s1a-iw-raw"), JAN1,
                              datetime(2026, 1, 2, tzinfo=UTC), store=store,
                              stations=load_stations(sim.stations_file),
                              sink=LocalSink(staging))
        reasons = {r.entity: r.reason for r in record.rejected}
        assert "path separator" in reasons[f"{item['id']}/../../../escaped.zip"]
        assert not list(tmp_path.rglob("escaped.zip"))
        assert all(p.is_relative_to(staging) for p in staging.rglob("*"))
    finally:
        sim.stop()


def test_killed_mid_upload_then_rerun(tmp_path: Path, s3_bucket: str) -> None:
    sim = make_simulator(tmp_path, scale=0.0, station_scale={"s1a": 0.5},
                         product_bytes=6 * 1024 * 1024, eopf_scale=0)
    try:
        catalog = tmp_path / "catalog"
        args = ["stage", "--collection", "prip-s1a-iw-raw", "--start", START, "--stop",
                "2026-01-08", "--catalog", str(catalog), "--stations", str(sim.stations_file),
                "--staging", f"s3://{s3_bucket}/s", "--workers", "1"]
        proc = popen_cli(*args)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(s3_objects(s3_bucket, "s/")) < 3:
            time.sleep(0.05)
        assert proc.poll() is None, "staging finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = now()
        store = LocalStore(catalog)
        items = list(iter_items(store, "prip-s1a-iw-raw"))
        left = sum(not is_staged(it) for it in items)
        assert 0 < left < len(items)
        windows = split_windows(JAN1, datetime(2026, 1, 8, tzinfo=UTC), 7)
        left_in = {window_id(iso(s), iso(e)): sum(not is_staged(it) for it in (
            window_items(store, "prip-s1a-iw-raw", s, e) or [])) for s, e in windows}
        truth = {e["_md5"] for e in sim.truth("s1a")}
        for data in s3_objects(s3_bucket, "s/").values():  # whatever is there is whole
            assert hashlib.md5(data).hexdigest() in truth
        res = run_cli(*args)
        assert res.returncode == 0, res.stderr
        items = list(iter_items(store, "prip-s1a-iw-raw"))
        objects = s3_objects(s3_bucket, "s/")
        assert all(is_staged(it) for it in items) and len(objects) == len(items)
        for item in items:
            (asset,) = item["assets"].values()
            data = objects[asset["href"].split("/", 3)[3]]
            assert "d510" + hashlib.md5(data).hexdigest() == asset["file:checksum"]
        # The re-run resumed: each window it ran took up only what the kill left unstaged.
        reruns = [r for r in iter_records(store, "stage") if r.started > killed_at]
        assert reruns
        for r in reruns:
            if left_in[r.window_id]:  # a window not ingested before the kill starts afresh
                assert r.counts["files"] == left_in[r.window_id]
        assert validate_catalog(store).ok
    finally:
        sim.stop()


@pytest.mark.parametrize("template, expect", [
    ("{collection}/{year}/{month}/{item}/{file}", "c/2026/01/i/f.raw"),
    ("by-day/{year}{month}{day}/{item}/{file}", "by-day/20260101/i/f.raw"),
])
def test_key_templates(template: str, expect: str) -> None:
    from rspy_batch.staging.keys import object_key

    assert object_key(template, collection="c", item_id="i", dt=JAN1, file_name="f.raw") == expect


@pytest.mark.parametrize("template", ["{file}", "../{item}/{file}", "{collection}/{day}"])
def test_bad_key_templates_are_refused(template: str) -> None:
    from rspy_batch.staging.keys import object_key

    with pytest.raises(ValueError):
        object_key(template, collection="c", item_id="i", dt=JAN1, file_name="f.raw")


def test_present_copies_are_recognised_not_downloaded(tmp_path: Path, s3_bucket: str) -> None:
    """A new catalog over an existing staging area (e.g. the catalog was rebuilt): every
    verified copy is recognised by size and checksum, none is uploaded again."""
    sim = make_simulator(tmp_path)
    try:
        staging = f"s3://{s3_bucket}/s"
        for collection in ("cadip-s1a-mti", "auxip-s2b-aux-ecmwfd"):
            assert stage_cli(sim, tmp_path / "first", staging,
                             collection=collection).returncode == 0
        s3 = boto3.client("s3")
        listed = {o["Key"]: o["LastModified"] for o in
                  s3.list_objects_v2(Bucket=s3_bucket, Prefix="s/")["Contents"]}
        for collection in ("cadip-s1a-mti", "auxip-s2b-aux-ecmwfd"):
            res = stage_cli(sim, tmp_path / "second", staging, collection=collection)
            assert res.returncode == 0, res.stderr
        records = list(iter_records(LocalStore(tmp_path / "second"), "stage"))
        assert sum(r.counts["staged"] for r in records) == 0
        assert sum(r.counts["already_staged"] for r in records) == len(listed)
        again = {o["Key"]: o["LastModified"] for o in
                 s3.list_objects_v2(Bucket=s3_bucket, Prefix="s/")["Contents"]}
        assert again == listed
        store = LocalStore(tmp_path / "second")
        assert all(is_staged(it) for c in ("cadip-s1a-mti", "auxip-s2b-aux-ecmwfd")
                   for it in iter_items(store, c))
    finally:
        sim.stop()
