"""Chaos: the whole pipeline (``rspy-batch campaign run``: ingest → stage → process →
publish) on S3 behind a fault-injecting proxy, stations with transient faults, killed with
SIGKILL at random points, then re-run with the faults still on. Every iteration must end
where a clean run ends: the same catalog, staged bytes and publication, valid, with no
orphan, no duplicate and no live lease.

CI runs ``RSPY_CHAOS_ITERATIONS`` (default 2) iterations; the full count is
``RSPY_CHAOS_ITERATIONS=20 .venv/bin/pytest -q -s tests/test_chaos.py``. Each iteration
prints its seed and where each kill landed; ``RSPY_CHAOS_SEED=<seed>
RSPY_CHAOS_ITERATIONS=1`` replays one iteration's schedule.
"""

from __future__ import annotations

import http.client
import io
import os
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest
import xarray as xr
from botocore.config import Config
from botocore.exceptions import ClientError
from campaign_support import INPUT, reachable_ids
from chaos_support import (
    OUTPUT,
    WEEK,
    Outcome,
    Run,
    iteration_plan,
    lease_pid,
    outcome,
    run_campaign,
    write_chaos_campaign,
)
from conftest import make_simulator
from e2e import _strip, expected
from faultproxy import KINDS, FaultProxy, ProxyFaults

from rspy_batch.catalog.lease import live_leases
from rspy_batch.catalog.reader import item_keys, read_json
from rspy_batch.catalog.records import COMPLETE, RunRecord, read_record, write_record
from rspy_batch.catalog.storage import Blob, LocalStore, S3Store, open_store
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.errors import ConfigError, ConflictError
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration import retcodes
from rspy_batch.processing import stac
from rspy_batch.processing.base import Processor, ProductInput
from rspy_batch.processing.run import (
    PlannedProduct,
    ProcessingSettings,
    linked_items,
    plan_products,
    process_window,
    product_done,
    window_processed,
)
from rspy_batch.simulator.faults import TRANSIENT_KINDS, FaultSpec
from rspy_batch.staging import state
from rspy_batch.templates import get_template
from rspy_batch.windows import parse_when

ITERATIONS = int(os.environ.get("RSPY_CHAOS_ITERATIONS", "2"))
# The default seed gives CI two single-kill iterations, at 52 % of the work (processing)
# and at 14 % (staging, or publishing the station items); the full count spreads further.
SEED = int(os.environ.get("RSPY_CHAOS_SEED", "20261126"))

# Seed 7 at this scale puts every data fault kind in the week (the truth is checked
# below), on two entities rejected at ingest: an evil name (with a bad checksum, which
# therefore never reaches staging) and a missing field; three items go through.
SIM = {"seed": 7, "stations": ("adgs",), "station_scale": {"adgs": 0.15}}
DATA_FAULTS = {"bad_checksum": 0.1, "missing_field": 0.1, "evil_name": 0.1}
# A run asks the station five things (one listing, three downloads, a token). Transient
# faults are drawn from (seed, request, attempt), so these rates make every kind fire in
# every iteration: the listing comes back malformed then slow, one download truncated
# twice, another a 5xx then a 429.
TRANSIENT = {"http_5xx": 0.1, "http_429": 0.1, "slow": 0.5, "slow_seconds": 0.2,
             "truncate": 0.35, "malformed_json": 0.65}
# About 1000 S3 requests per run: some five faults of each kind (every client retry backs
# off, so higher rates mostly make the test slower).
PROXY_FAULTS = ProxyFaults(drop=0.005, http_500=0.005, http_503=0.005, slow=0.005,
                           reset=0.005, slow_seconds=0.2)


def _s3(endpoint: str, attempts: int = 1):  # noqa: ANN202 - a boto3 client
    return boto3.client("s3", endpoint_url=endpoint,
                        config=Config(retries={"max_attempts": attempts, "mode": "standard"}))


# ---------------------------------------------------------------- the proxy itself


def test_fault_proxy_relays_faithfully_and_injects_each_fault(s3_server: str,
                                                             s3_bucket: str) -> None:
    with FaultProxy(s3_server, seed=1) as proxy:
        s3 = _s3(proxy.url)
        # conditional writes reach the server with their headers
        s3.put_object(Bucket=s3_bucket, Key="a", Body=b"first", IfNoneMatch="*")
        with pytest.raises(ClientError) as info:
            s3.put_object(Bucket=s3_bucket, Key="a", Body=b"second", IfNoneMatch="*")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        etag = s3.head_object(Bucket=s3_bucket, Key="a")["ETag"]
        s3.put_object(Bucket=s3_bucket, Key="a", Body=b"third", IfMatch=etag)
        # a file object goes up with Expect: 100-continue, 12 MiB as a multipart upload
        data = os.urandom(12 * 1024 * 1024 + 5)
        s3.upload_fileobj(io.BytesIO(data), s3_bucket, "big")
        assert s3.head_object(Bucket=s3_bucket, Key="big")["ETag"].endswith('-2"')
        # a chunked body, then a second request on the same (kept-alive) connection
        host, port = urllib.parse.urlsplit(proxy.url).netloc.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        pieces = [bytes([65 + i]) * 1000 for i in range(5)]
        conn.request("PUT", f"/{s3_bucket}/chunked", body=iter(pieces), encode_chunked=True)
        assert conn.getresponse().read() == b""
        sock = conn.sock
        conn.request("HEAD", f"/{s3_bucket}/chunked")
        conn.getresponse().read()
        assert conn.sock is sock
        direct = _s3(s3_server)
        assert direct.get_object(Bucket=s3_bucket, Key="a")["Body"].read() == b"third"
        assert direct.get_object(Bucket=s3_bucket, Key="big")["Body"].read() == data
        assert direct.get_object(Bucket=s3_bucket, Key="chunked")["Body"].read() == \
            b"".join(pieces)
        assert not +proxy.counts

        url = urllib.parse.urlsplit(s3.generate_presigned_url(
            "get_object", Params={"Bucket": s3_bucket, "Key": "big"}))
        target = f"{url.path}?{url.query}"
        seen = {}
        for kind in KINDS:
            proxy.faults = ProxyFaults(**{kind.replace("-", "_"): 1.0}, slow_seconds=0.05)
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                conn.request("GET", target)
                answer = conn.getresponse()
                seen[kind] = (answer.status, answer.read())
            except (ConnectionError, http.client.HTTPException) as exc:
                seen[kind] = (type(exc).__name__, b"")
            finally:
                conn.close()
        proxy.enabled = False
        assert s3.get_object(Bucket=s3_bucket, Key="a")["Body"].read() == b"third"
    assert seen["drop"][0] in ("RemoteDisconnected", "ConnectionResetError")
    assert seen["http-500"][0] == 500 and b"<Code>InternalError</Code>" in seen["http-500"][1]
    assert seen["http-503"][0] == 503 and b"<Code>SlowDown</Code>" in seen["http-503"][1]
    assert seen["slow"] == (200, data)
    assert seen["reset"][0] in ("ConnectionResetError", "IncompleteRead")
    assert proxy.counts == Counter(dict.fromkeys(KINDS, 1))


def test_s3_store_read_survives_a_connection_reset_mid_body(s3_server: str,
                                                            s3_bucket: str) -> None:
    """botocore retries requests, not the reading of a GetObject body (nor of its error
    body): a reset there must not fail the read."""
    body = b"x" * 100_000
    _s3(s3_server).put_object(Bucket=s3_bucket, Key="cat/doc.json", Body=body)

    def once(kind: str, line: str) -> None:
        proxy.enabled = False  # the retry goes through

    with FaultProxy(s3_server, seed=2, faults=ProxyFaults(reset=1.0),
                    on_fault=once) as proxy:
        # botocore's own retries on (absorbing a reset that came before the answer's head)
        store = S3Store(f"s3://{s3_bucket}/cat", client=_s3(proxy.url, attempts=3))
        blob = store.read("doc.json")
        assert blob is not None and blob.data == body
        proxy.enabled = True
        assert store.read("missing.json") is None
    assert proxy.counts["reset"] == 2


def test_s3_store_conditional_write_whose_answer_was_lost_succeeds(
        s3_server: str, s3_bucket: str) -> None:
    """S3 applies a conditional write, the connection breaks before its answer, botocore
    retries it and the retry fails its own condition (412): the write did happen."""
    def once(kind: str, line: str) -> None:
        proxy.enabled = False

    with FaultProxy(s3_server, seed=3, faults=ProxyFaults(reset=1.0),
                    on_fault=once) as proxy:
        store = S3Store(f"s3://{s3_bucket}/cat", client=_s3(proxy.url, attempts=3))
        version = store.put("doc.json", b"one", expect=None)
        assert store.read("doc.json") == Blob(b"one", version)
        proxy.enabled = True
        version = store.put("doc.json", b"two", expect=version)
        assert store.read("doc.json") == Blob(b"two", version)
        with pytest.raises(ConflictError):  # a lost race is still one
            store.put("doc.json", b"three", expect=None)
    assert proxy.counts["reset"] == 2 and proxy.applied == 2


def test_a_store_check_rides_out_transient_faults(s3_server: str, s3_bucket: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A command's store check gives up quickly only on a refused connection: a 503 on
    both of its quick attempts is asked again with the working client's retries, so a
    fault does not end a run; a missing bucket is named, once."""
    def twice(kind: str, line: str) -> None:
        if proxy.counts["http-503"] >= 2:
            proxy.enabled = False

    with FaultProxy(s3_server, seed=4, faults=ProxyFaults(http_503=1.0),
                    on_fault=twice) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        open_store(f"s3://{s3_bucket}/cat", check=True)
        assert proxy.counts["http-503"] == 2 and proxy.requests == 3
        with pytest.raises(ConfigError, match=f"bucket 'no-{s3_bucket}' does not exist"):
            open_store(f"s3://no-{s3_bucket}/cat", check=True)
        assert proxy.requests == 5  # one quick attempt, one of the working client


class _Stub(Processor):
    name, version, level, product_type, title = "stub", "1.0.0", "L-stub", "STUB______", "Stub"

    def run(self, inputs: Sequence[ProductInput], **params: Any) -> xr.DataTree:
        raise NotImplementedError


def _output_item(product: PlannedProduct, stub: _Stub) -> dict[str, Any]:
    """The item a run catalogs for ``product`` (what completeness looks at)."""
    return {"type": "Feature", "stac_version": "1.1.0", "id": product.product_id,
            "geometry": None, "assets": {},
            "properties": {"datetime": iso(product.datetime),
                           "processing:software": stac.software(stub.name, stub.version)},
            "links": [{"rel": "derived_from", "href": f"../{i}.json", "title": i}
                      for i in product.input_ids]}


def test_a_product_whose_item_a_kill_left_unlinked_is_not_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kill between a product's item file and its day catalog left the item unlinked:
    the product must not count as done (the chaos test's rerun then never linked it)."""
    store, out, stub = LocalStore(tmp_path), "stub-out", _Stub()
    writer = CatalogWriter(store, workers=1)
    writer.ensure_collection({"id": out, "description": "stub outputs", "license": "other"})
    source = {"id": "IN_1", "properties": {"datetime": "2026-01-06T01:02:03Z"}}
    (product,) = plan_products(stub, [source], output_collection=out, params={})
    item = _output_item(product, stub)

    def killed(*args: object) -> None:
        raise KeyboardInterrupt  # the process is gone before the day catalog is written

    monkeypatch.setattr(CatalogWriter, "_link_items", killed)
    with pytest.raises(KeyboardInterrupt):
        writer.upsert_items(out, [item])
    monkeypatch.undo()
    assert store.exists(product.item_key) and not reachable_ids(store, out)
    assert not product_done(store, product, stub, linked_items(store, out, [product]))
    writer.upsert_items(out, [item])  # what the rerun does for a product not done
    assert reachable_ids(store, out) == [product.product_id]
    assert product_done(store, product, stub, linked_items(store, out, [product]))


def test_a_window_a_kill_left_unrecorded_is_recorded_by_the_next_run(tmp_path: Path) -> None:
    """A kill after a window's last product, before its run record: the window is not
    processed yet (publishing finds processed collections by their records), and the next
    run records it without making anything again."""
    store, stub, out = LocalStore(tmp_path / "catalog"), _Stub(), f"{INPUT}-stub"
    template = get_template(INPUT)
    start, stop = parse_when(WEEK[0]), parse_when(WEEK[1])
    writer = CatalogWriter(store, workers=1)
    writer.ensure_collection(template.collection_dict())
    staged = {"href": "s3://staging/IN_1", state.STAGED_AT: "2026-01-06T02:00:00Z",
              "alternate": {"station": {"href": "http://127.0.0.1:9/IN_1"}}}
    writer.upsert_items(INPUT, [{
        "type": "Feature", "stac_version": "1.1.0", "id": "IN_1", "geometry": None,
        "properties": {"datetime": "2026-01-06T01:02:03Z"}, "links": [],
        "assets": {"file": staged}}])
    (key,) = item_keys(store, INPUT)
    write_record(store, RunRecord("ingest", INPUT, iso(start), iso(stop), status=COMPLETE,
                                  items=[key]))
    (product,) = plan_products(stub, [read_json(store, key)], output_collection=out,
                               params={})
    writer.ensure_collection({"id": out, "description": "stub outputs", "license": "other"})
    writer.upsert_items(out, [_output_item(product, stub)])  # then the kill: no record
    settings = ProcessingSettings(products=str(tmp_path / "products"), output_collection=out)

    assert not window_processed(store, stub, INPUT, start, stop, settings)
    record = process_window(stub, template, start, stop, store=store, settings=settings)
    assert record.status == COMPLETE and record.items == [product.item_key]
    assert record.counts["already_processed"] == 1 and record.counts["processed"] == 0
    assert read_record(store, "process", out, iso(start), iso(stop)) == record
    assert window_processed(store, stub, INPUT, start, stop, settings)


# ---------------------------------------------------------------- chaos


def _expectations(sim) -> tuple[set[str], int]:  # noqa: ANN001
    """The items a clean run must catalog and its exit code (3 if it rejects anything),
    from the station truth."""
    tpl = get_template(INPUT)
    truth = sim.truth(tpl.station)
    items, rejected = expected(truth, tpl, parse_when(WEEK[0]), parse_when(WEEK[1]))
    on_rejected = {k for e in truth if (e.get("Name") or e["Id"]) in rejected
                   for k in e["_faults"]}
    on_items = {k for e in truth if _strip(e["_name"]) in items for k in e["_faults"]}
    # The premise of the workload: every data fault kind in the week, on entities that
    # are rejected at ingest (a bad checksum on an item would fail its stage window).
    assert items and on_rejected >= {"evil-name", "missing-field", "bad-checksum"}, truth
    assert "bad-checksum" not in on_items, on_items
    return items, retcodes.REJECTED if rejected else retcodes.OK


def _check_outcome(got: Outcome, want: Outcome, where: str) -> None:
    assert got.items == want.items, where
    assert got.published == want.published, where
    assert got.staged == want.staged, where
    assert got.catalog == want.catalog, where
    assert got.public == want.public, where


def _check_sound(root: str, where: str, killed: tuple[int, ...] = ()) -> None:
    """Valid, no orphan, and no lease held: a killed run's leases stay live until their
    ttl (30 s here; a rerun takes over only those of windows it still has to do), every
    other run released its own."""
    for name in ("catalog", "public"):
        store = open_store(f"{root}/{name}")
        report = validate_catalog(store)
        assert report.ok and report.orphans == [], (where, name, report.errors[:5],
                                                    report.orphans[:5])
        held = [i for i in live_leases(store) if lease_pid(i.owner) not in killed]
        assert held == [], (where, name)


@pytest.mark.timeout(300 + 240 * ITERATIONS)  # the full count runs far beyond the default
def test_chaos_kills_and_faults_end_where_a_clean_run_ends(s3_server: str, s3_bucket: str,
                                                          tmp_path: Path) -> None:
    base = f"s3://{s3_bucket}"
    reference = make_simulator(tmp_path / "ref-sim", faults=FaultSpec(**DATA_FAULTS), **SIM)
    ref_url = reference.base_url
    try:
        items, code = _expectations(reference)
        path = write_chaos_campaign(tmp_path / "ref" / "campaign.yaml", root=f"{base}/ref",
                                    stations=reference.stations_file)
        clean = run_campaign(path, endpoint=s3_server, log=tmp_path / "ref" / "run.log")
        assert clean.returncode == code, clean.tail()
        want = outcome(f"{base}/ref", sim_url=ref_url)
    finally:
        reference.stop()
    _check_sound(f"{base}/ref", "reference")
    # one product per item, each item once
    assert want.items[INPUT] == sorted(items) and len(want.items[OUTPUT]) == len(items)
    print(f"\nchaos: reference run {clean.seconds:.1f} s (work {clean.work:.1f} s), exit "
          f"{clean.returncode}; {ITERATIONS} iteration(s) from seed {SEED}")

    kills: list[Run] = []
    sim_faults: Counter[str] = Counter()
    with FaultProxy(s3_server, seed=SEED, faults=PROXY_FAULTS) as proxy:
        for it in iteration_plan(SEED, ITERATIONS, clean.work):
            where = f"iteration {it.index} (RSPY_CHAOS_SEED={it.seed})"
            proxy.reseed(it.seed)
            sim = make_simulator(tmp_path / f"sim-{it.index}", **SIM,
                                 faults=FaultSpec(**DATA_FAULTS, **TRANSIENT))
            sim_url = sim.base_url
            try:
                root = f"{base}/chaos-{it.index}"
                path = write_chaos_campaign(tmp_path / f"it-{it.index}" / "campaign.yaml",
                                            root=root, stations=sim.stations_file)
                runs = [run_campaign(path, endpoint=proxy.url, kill_after=after,
                                     log=tmp_path / f"it-{it.index}" / f"killed-{n}.log")
                        for n, after in enumerate(it.kills)]
                final = run_campaign(path, endpoint=proxy.url,
                                     log=tmp_path / f"it-{it.index}" / "rerun.log")
                station_faults = sim.stats()["faults"]
            finally:
                sim.stop()
            kills += runs
            print(f"chaos: {where}: killed " + ", ".join(
                f"{after / clean.work:.0%} into the work ({after:.1f} s): {r.stage}"
                for after, r in zip(it.kills, runs, strict=True))
                + f"; rerun {final.seconds:.1f} s, exit {final.returncode}; proxy "
                f"{proxy.snapshot()}")
            sim_faults.update(station_faults)
            assert set(station_faults) == set(TRANSIENT_KINDS), (where, station_faults)
            assert final.returncode == code, (where, final.tail())
            _check_outcome(outcome(root, sim_url=sim_url), want, where)
            _check_sound(root, where,
                         killed=tuple(r.pid for r in runs if r.returncode is None))

    # the chaos did happen: every kind of proxy fault (station faults: above), kills mid-run
    assert all(proxy.counts[k] for k in KINDS) and proxy.applied, proxy.snapshot()
    assert any(r.stage not in ("startup", "finished") for r in kills), kills
    print(f"chaos: kills by stage {dict(Counter(r.stage for r in kills))}; station faults "
          f"{dict(sim_faults)}; proxy {proxy.snapshot()}")
