"""Campaigns on more than one worker: a central ``luigid`` with two worker processes and a
Dask cluster with two workers, against a single-process run; and two campaign processes
at once on the same collections (the catalog's leases keep them apart)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import zarr
from campaign_support import (
    INPUT,
    ONE_WEEK,
    PLUGINS,
    STATION_ONLY,
    catalog_view,
    duplicates,
    expected_items,
    plugin_env,
    product_arrays,
    reachable_ids,
    write_campaign,
)
from e2e import CLI

from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.lease import LEASE_PREFIX, hold, live_leases
from rspy_batch.catalog.reader import iter_items
from rspy_batch.catalog.storage import LocalStore, Store, open_store
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.orchestration import retcodes
from rspy_batch.orchestration.leases import window_lease

OUT = f"{INPUT}-toy-v0.1.0"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {**os.environ, **plugin_env()}


def _start(args: list[str], log: Path) -> subprocess.Popen:
    handle = log.open("w")
    return subprocess.Popen(args, env=_env(), stdout=handle, stderr=subprocess.STDOUT)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_until(check, what: str, timeout: float = 60.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up in {timeout:.0f} s")
        time.sleep(0.3)


@pytest.fixture
def luigid(tmp_path: Path) -> Iterator[str]:
    """Luigi's central scheduler on loopback."""
    port = _free_port()
    (tmp_path / "luigid-logs").mkdir()  # luigid does not create its log directory
    proc = _start([str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port),
                   "--state-path", str(tmp_path / "luigid.pickle"),
                   "--logdir", str(tmp_path / "luigid-logs")], tmp_path / "luigid.log")
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: urllib.request.urlopen(f"{url}/api/task_list?data=%7B%7D",
                                                   timeout=2).status == 200, "luigid")
        yield url
    finally:
        _stop([proc])


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler with two single-threaded workers, each its own process."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--dashboard-address", "127.0.0.1:0"], tmp_path / "dask-scheduler.log")]
    try:
        for i in range(2):
            procs.append(_start([str(BIN / "dask"), "worker", address, "--nthreads", "1",
                                 "--host", "127.0.0.1", "--dashboard-address", "127.0.0.1:0",
                                 "--name", f"w{i}"], tmp_path / f"dask-worker-{i}.log"))

        def two_workers() -> bool:
            with Client(address, timeout=5) as client:
                client.wait_for_workers(2, timeout=30)
                return True

        _wait_until(two_workers, "the Dask cluster", timeout=90)
        yield address
    finally:
        _stop(list(reversed(procs)))


def _campaign(tmp_path: Path, sim, root: str, name: str, **options: object) -> Path:
    # One window per collection keeps these multi-process tests short; the two
    # collections' windows still give two workers something to share.
    return write_campaign(tmp_path / f"{name}.yaml", catalog=f"{root}/catalog",
                          staging=f"{root}/staging", stations=sim.stations_file,
                          publish_to=f"{root}/public", options=options or None,
                          stop=ONE_WEEK)


def _lease_owners(store: Store) -> set[str]:
    """Processes that held the window leases (host:pid:random, the pid in the middle)."""
    return {loads(blob.data)["owner"].split(":")[1] for key in store.list(LEASE_PREFIX)
            if (blob := store.read(key)) is not None}


def test_luigid_two_workers_and_dask_cluster_equal_a_single_process_run(
        simulator, s3_bucket: str, luigid: str, dask_cluster: str, tmp_path: Path) -> None:
    multi = _campaign(tmp_path, simulator, f"s3://{s3_bucket}/multi", "multi")
    logs = [tmp_path / f"worker-{i}.log" for i in range(2)]
    workers = [_start([*CLI, "campaign", "run", str(multi), "--scheduler-url", luigid,
                       "--dask-scheduler", dask_cluster], log) for log in logs]
    for worker, log in zip(workers, logs, strict=True):
        worker.wait(timeout=400)
        assert worker.returncode == 0, log.read_text()[-3000:]

    single = _campaign(tmp_path, simulator, f"s3://{s3_bucket}/single", "single")
    alone = subprocess.run([*CLI, "campaign", "run", str(single), "--quiet"], env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]

    m_cat = open_store(f"s3://{s3_bucket}/multi/catalog")
    s_cat = open_store(f"s3://{s3_bucket}/single/catalog")
    # the work was shared: both worker processes held window leases
    assert _lease_owners(m_cat) == {str(w.pid) for w in workers}
    # processing ran on the Dask cluster given by address
    for item in iter_items(m_cat, OUT):
        href = item["assets"]["product"]["href"]
        attrs = zarr.open_group(href, mode="r", zarr_format=2, storage_options={
            "client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}}).attrs
        assert attrs["other_metadata"]["scheduler"] == dask_cluster
    from distributed import Client

    with Client(dask_cluster, timeout=10) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and sum(executed.values()) > 0

    # the same catalog, the same products, the same publication as one process makes
    assert reachable_ids(m_cat, OUT) and catalog_view(m_cat) == catalog_view(s_cat)
    assert product_arrays(m_cat, OUT) == product_arrays(s_cat, OUT)
    m_pub = open_store(f"s3://{s3_bucket}/multi/public")
    s_pub = open_store(f"s3://{s3_bucket}/single/public")
    assert catalog_view(m_pub) == catalog_view(s_pub)
    assert validate_catalog(m_cat).ok and validate_catalog(m_pub).ok
    for cid in (INPUT, STATION_ONLY):
        ids = reachable_ids(m_cat, cid)
        assert set(ids) == expected_items(simulator, cid, ONE_WEEK) and not duplicates(ids)


@contextlib.contextmanager
def _holding_every_ingest_window(path: Path, monkeypatch: pytest.MonkeyPatch
                                 ) -> Iterator[None]:
    """Hold the ingest leases of every window of the campaign, as another run would."""
    from rspy_batch.campaign.config import load_campaign
    from rspy_batch.campaign.plan import steps

    monkeypatch.syspath_prepend(str(PLUGINS))  # the campaign names the plug-in processor
    camp = load_campaign(path)
    store = open_store(camp.catalog)
    with contextlib.ExitStack() as stack:
        for step in steps(camp):
            if step.stage == "ingest":
                w = step.window
                stack.enter_context(hold(store, window_lease("ingest", w.collection, w.start,
                                                             w.stop), ttl=60, wait=0))
        yield


def test_two_campaign_processes_at_once_lose_and_duplicate_nothing(
        simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _campaign(tmp_path, simulator, str(tmp_path), "twice")
    store = LocalStore(tmp_path / "catalog")
    logs = [tmp_path / f"run-{i}.log" for i in range(2)]
    # Both start while the ingest windows are held, so both meet a held window, then race.
    with _holding_every_ingest_window(path, monkeypatch):
        runs = [_start([*CLI, "campaign", "run", str(path)], log) for log in logs]
        _wait_until(lambda: all("waiting" in log.read_text() for log in logs),
                    "both runs waiting for a held window", timeout=120)
    for run, log in zip(runs, logs, strict=True):
        run.wait(timeout=600)
        assert run.returncode == 0, log.read_text()[-3000:]

    for cid in (INPUT, STATION_ONLY):
        ids = reachable_ids(store, cid)
        assert set(ids) == expected_items(simulator, cid, ONE_WEEK), cid
        assert not duplicates(ids), cid
    outputs = reachable_ids(store, OUT)
    assert len(outputs) == len(expected_items(simulator, INPUT, ONE_WEEK))
    assert not duplicates(outputs)
    products = sorted(p.name for p in (tmp_path / "staging").rglob("*.zarr"))
    assert len(products) == len(outputs) and not duplicates(products)
    view = catalog_view(store)
    for key, doc in view.items():
        hrefs = [lk["href"] for lk in doc.get("links", []) if lk["rel"] in ("item", "child")]
        assert not duplicates(hrefs), key
    assert validate_catalog(store).ok
    public = LocalStore(tmp_path / "public")
    assert validate_catalog(public).ok
    assert not live_leases(store)


def test_if_busy_skip_exits_already_running(simulator, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = _campaign(tmp_path, simulator, str(tmp_path), "skip")
    store = LocalStore(tmp_path / "catalog")
    with _holding_every_ingest_window(path, monkeypatch):
        skipped = subprocess.run([*CLI, "campaign", "run", str(path), "--if-busy", "skip"],
                                 env=_env(), capture_output=True, text=True, timeout=120)
    assert skipped.returncode == retcodes.DEFAULTS["already_running"], skipped.stderr[-2000:]
    assert "another run is on 2 of its windows" in skipped.stderr  # both collections
    assert not list(store.list("auxip"))  # nothing ran
    after = subprocess.run([*CLI, "campaign", "run", str(path), "--if-busy", "skip",
                            "--quiet"], env=_env(), capture_output=True, text=True,
                           timeout=600)
    assert after.returncode == 0, after.stderr[-3000:]
    assert len(reachable_ids(store, OUT)) == len(expected_items(simulator, INPUT, ONE_WEEK))
