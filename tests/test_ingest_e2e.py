"""Ingest end to end: simulator over HTTP → CLI / Luigi → catalog on disk or S3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import make_simulator
from e2e import catalog_item_ids, expected, popen_cli, run_cli, stac_files

from rspy_batch.catalog.reader import iter_items
from rspy_batch.catalog.records import iter_records
from rspy_batch.catalog.storage import LocalStore, S3Store, Store, open_store
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.simulator.faults import FaultSpec
from rspy_batch.templates import load_templates
from rspy_batch.windows import split_windows

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MID_JAN = datetime(2026, 1, 15, tzinfo=UTC)


def assert_matches_truth(sim, store: Store, start: datetime = JAN, stop: datetime = FEB,
                         collections: list[str] | None = None) -> set[str]:
    """Exactly one item per usable station entity; returns the rejected labels expected."""
    all_rejected: set[str] = set()
    for tpl in load_templates().values():
        if collections and tpl.id not in collections:
            continue
        want, rejected = expected(sim.truth(tpl.station), tpl, start, stop)
        got = catalog_item_ids(store, tpl.id)
        assert len(got) == len(set(got)), f"{tpl.id}: duplicate items"
        assert set(got) == want, f"{tpl.id}: {set(got) ^ want}"
        assert want, f"{tpl.id}: the simulator should serve entities in the window"
        all_rejected |= rejected
    return all_rejected


def test_two_weeks_of_every_collection_into_local_dir(simulator, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    res = run_cli("ingest", "--collection", "all", "--start", "2026-01-01", "--stop",
                  "2026-01-15", "--catalog", str(catalog), "--stations",
                  str(simulator.stations_file))
    assert res.returncode == 0, res.stderr
    assert run_cli("validate", "--catalog", str(catalog)).returncode == 0
    store = LocalStore(catalog)
    assert_matches_truth(simulator, store, stop=MID_JAN)
    records = list(iter_records(store, "ingest"))
    assert records and all(r.status == "complete" and not r.rejected for r in records)

    # Re-running is idempotent: same files, same bytes, nothing written but run records.
    before = stac_files(catalog)
    mtimes = {p: p.stat().st_mtime_ns for p in catalog.rglob("*.json") if "_rspy" not in p.parts}
    res = run_cli("ingest", "--collection", "all", "--start", "2026-01-01", "--stop",
                  "2026-01-15", "--catalog", str(catalog), "--stations",
                  str(simulator.stations_file), "--force")
    assert res.returncode == 0, res.stderr
    assert stac_files(catalog) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_two_weeks_of_every_collection_into_s3(simulator, s3_bucket: str) -> None:
    url = f"s3://{s3_bucket}/stac"
    res = run_cli("ingest", "--collection", "all", "--start", "2026-01-01", "--stop",
                  "2026-01-15", "--catalog", url, "--stations", str(simulator.stations_file),
                  "--workers", "2")
    assert res.returncode == 0, res.stderr
    val = run_cli("validate", "--catalog", url)
    assert val.returncode == 0, val.stdout + val.stderr
    assert_matches_truth(simulator, S3Store(url), stop=MID_JAN)


def test_luigi_command_line_is_equivalent(simulator, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    res = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "tasks.ingest", "Ingest",
         "--collection", "cadip-s2b-nsg", "--start", "2026-01-01", "--stop", "2026-02-01",
         "--catalog", str(catalog), "--stations", str(simulator.stations_file),
         "--local-scheduler"], capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0, res.stderr
    assert "This progress looks :)" in res.stdout + res.stderr
    assert_matches_truth(simulator, LocalStore(catalog), collections=["cadip-s2b-nsg"])
    res = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", "tasks.stage", "Stage",
         "--collection", "cadip-s2b-nsg", "--start", "2026-01-01", "--stop", "2026-01-08",
         "--catalog", str(catalog), "--stations", str(simulator.stations_file),
         "--staging", str(tmp_path / "staging"), "--local-scheduler"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert res.returncode == 0 and "This progress looks :)" in res.stdout + res.stderr, res.stderr
    staged = [it for it in iter_items(LocalStore(catalog), "cadip-s2b-nsg")
              if it["assets"] and all(a["href"].startswith("file://") for a in
                                      it["assets"].values())]
    assert staged and len(list((tmp_path / "staging").rglob("*.raw"))) == sum(
        len(it["assets"]) for it in staged)


def test_station_faults_are_retried_or_recorded(tmp_path: Path) -> None:
    faults = FaultSpec.parse("http-5xx=0.15,http-429=0.1,slow=0.03,slow-seconds=0.3,"
                             "malformed-json=0.1,bad-checksum=0.1,missing-field=0.08,"
                             "evil-name=0.08,token-ttl=1")
    sim = make_simulator(tmp_path, faults=faults)
    try:
        catalog = tmp_path / "catalog"
        res = run_cli("ingest", "--collection", "all", "--start", "2026-01-01", "--stop",
                      "2026-02-01", "--catalog", str(catalog), "--stations",
                      str(sim.stations_file))
        assert res.returncode == 3, res.stderr  # done, with rejected entities
        store = LocalStore(catalog)
        want_rejected = assert_matches_truth(sim, store)
        got_rejected = {rej.entity for r in iter_records(store, "ingest") for rej in r.rejected}
        assert want_rejected and got_rejected == want_rejected
        reasons = " ".join(rej.reason for r in iter_records(store, "ingest") for rej in r.rejected)
        assert "missing field" in reasons and ("path separator" in reasons
                                               or "control character" in reasons)
        assert validate_catalog(store).ok
        status = run_cli("status", "--catalog", str(catalog), "--rejected")
        assert status.returncode == 0
        for label in want_rejected:
            assert repr(label) in status.stdout
        stats = sim.stats()
        injected = stats["faults"]
        for kind in ("http-5xx", "http-429", "malformed-json", "slow"):
            assert injected.get(kind, 0) > 0, (kind, injected)
        # tokens expired mid-run and were renewed: more than one per station
        assert sum(stats["tokens_issued"].values()) > len(stats["tokens_issued"])
    finally:
        sim.stop()


def test_unreachable_station_fails_its_windows_only(simulator, tmp_path: Path) -> None:
    doc = yaml.safe_load(simulator.stations_file.read_text())
    doc["stations"]["s1a"]["url"] = "http://127.0.0.1:9/s1a/odata/v1/"  # nothing listens
    doc["stations"]["s1a"]["max_retries"] = 1
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(doc))
    catalog = tmp_path / "catalog"
    args = ["ingest", "--collection", "all", "--start", "2026-01-01", "--stop", "2026-01-15",
            "--catalog", str(catalog)]
    res = run_cli(*args, "--stations", str(broken))
    assert res.returncode == 4, res.stderr
    store = LocalStore(catalog)
    failed = [r for r in iter_records(store, "ingest") if r.status == "failed"]
    assert failed and {r.collection for r in failed} == {"prip-s1a-iw-raw", "prip-s1a-iw-grd"}
    assert all("s1a" in r.error for r in failed)
    assert "failed ingest prip-s1a-iw-raw" in run_cli("status", "--catalog", str(catalog)).stdout
    assert validate_catalog(store).ok
    res = run_cli(*args, "--stations", str(simulator.stations_file))
    assert res.returncode == 0, res.stderr
    assert_matches_truth(simulator, store, stop=MID_JAN)


def test_killed_mid_write_then_rerun_converges(tmp_path: Path) -> None:
    sim = make_simulator(tmp_path, station_scale={"s1a": 8.0})
    try:
        args = ["ingest", "--collection", "prip-s1a-iw-raw", "--start", "2026-01-01",
                "--stop", "2026-02-01", "--stations", str(sim.stations_file)]
        crashed, clean = tmp_path / "crashed", tmp_path / "clean"
        proc = popen_cli(*args, "--catalog", str(crashed))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if len(list(crashed.glob("prip-s1a-iw-raw/2026/01/*/*/*.json"))) >= 300:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the ingest finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = LocalStore(crashed)
        assert validate_catalog(store, schemas=False).ok  # no link to a missing file
        done = [r for r in iter_records(store, "ingest") if r.status == "complete"]
        assert len(done) < len(split_windows(JAN, FEB, 7))  # the kill left work undone

        assert run_cli(*args, "--catalog", str(crashed)).returncode == 0
        assert run_cli(*args, "--catalog", str(clean)).returncode == 0
        assert stac_files(crashed) == stac_files(clean)
        report = validate_catalog(store)
        assert report.ok and report.orphans == []
    finally:
        sim.stop()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_overlapping_ingests_at_once(where: str, simulator, tmp_path: Path,
                                         request: pytest.FixtureRequest) -> None:
    url = str(tmp_path / "catalog") if where == "local" else \
        f"s3://{request.getfixturevalue('s3_bucket')}/stac"
    common = ["--collection", "prip-s1a-iw-raw", "--catalog", url, "--stations",
              str(simulator.stations_file)]
    first = popen_cli("ingest", *common, "--start", "2026-01-01", "--stop", "2026-01-24")
    second = popen_cli("ingest", *common, "--start", "2026-01-06", "--stop", "2026-02-01")
    for proc in (first, second):
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    store = open_store(url)
    report = validate_catalog(store)
    assert report.ok, report.errors[:5]
    assert_matches_truth(simulator, store, collections=["prip-s1a-iw-raw"])


def test_no_credential_in_catalog_records_or_logs(simulator, tmp_path: Path,
                                                  s3_bucket: str) -> None:
    secrets = list(simulator.credentials.values()) + [os.environ["AWS_SECRET_ACCESS_KEY"]]
    assert all(len(s) >= 8 for s in secrets)
    local = tmp_path / "catalog"
    logs = ""
    for url in (str(local), f"s3://{s3_bucket}/stac"):
        res = run_cli("-vv", "ingest", "--collection", "all", "--start", "2026-01-01",
                      "--stop", "2026-01-10", "--catalog", url, "--stations",
                      str(simulator.stations_file))
        assert res.returncode == 0, res.stderr
        logs += res.stdout + res.stderr
    res = run_cli("-vv", "stage", "--collection", "cadip-s2b-nsg", "--start", "2026-01-01",
                  "--stop", "2026-01-03", "--catalog", str(local), "--stations",
                  str(simulator.stations_file), "--staging", f"s3://{s3_bucket}/staged")
    assert res.returncode == 0, res.stderr
    logs += res.stdout + res.stderr
    assert "Authorization" not in logs or "Bearer" not in logs
    s3 = S3Store(f"s3://{s3_bucket}")
    blobs = [p.read_bytes() for p in local.rglob("*") if p.is_file()]
    blobs += [s3.read(k).data for k in s3.list()]  # catalog and staged files
    blobs += [str(s3.client.head_object(Bucket=s3_bucket, Key=k)["Metadata"]).encode()
              for k in s3.list("staged")]
    assert len(blobs) > 50
    for secret in secrets:
        assert secret not in logs
        assert not any(secret.encode() in b for b in blobs)
    assert "DEBUG" in logs  # the verbose run did log


def test_entity_changed_at_station_updates_its_item(tmp_path: Path) -> None:
    """Same seed, same port, other payload size: every product's size and checksum change
    at the station; a re-ingest updates those items in place, adding none."""
    from rspy_batch.ingest import ingest_window
    from rspy_batch.stations.config import load_stations
    from rspy_batch.templates import get_template

    tpl = get_template("prip-s1a-iw-raw")
    stop = datetime(2026, 1, 8, tzinfo=UTC)
    store = LocalStore(tmp_path / "catalog")
    first = make_simulator(tmp_path / "a", product_bytes=2048)
    port = int(first.base_url.rsplit(":", 1)[1])
    try:
        record = ingest_window(tpl, JAN, stop, store=store,
                               stations=load_stations(first.stations_file))
    finally:
        first.stop()
    n = record.counts["added"]
    before = {it["id"]: it for it in iter_items(store, tpl.id)}
    second = make_simulator(tmp_path / "b", product_bytes=4096, port=port)
    try:
        record = ingest_window(tpl, JAN, stop, store=store,
                               stations=load_stations(second.stations_file))
    finally:
        second.stop()
    assert record.counts == {"entities": n, "added": 0, "updated": n, "unchanged": 0,
                             "rejected": 0}
    after = {it["id"]: it for it in iter_items(store, tpl.id)}
    assert after.keys() == before.keys()
    for item_id, item in after.items():
        (asset,) = item["assets"].values()
        (old,) = before[item_id]["assets"].values()
        assert asset["file:size"] > old["file:size"]
        assert asset["file:checksum"] != old["file:checksum"]
    assert validate_catalog(store).ok
