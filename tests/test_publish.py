"""Publishing a pipeline-made catalog: public, valid, private things kept out, incremental,
crash-safe, per-owner, on a directory and on the S3 server."""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import shutil
from pathlib import Path

import boto3
import pytest
import requests
from conftest import make_simulator
from e2e import run_cli
from pipeline import PROCESSED, RAW, SESSIONS, STATION, Pipeline, publish_config

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import dumps, loads
from rspy_batch.catalog.records import iter_records
from rspy_batch.catalog.storage import LocalStore, open_store
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.catalog.walk import walk_items
from rspy_batch.publish.bucket import bucket_policy
from rspy_batch.publish.config import load_config
from rspy_batch.publish.index import query_index, query_walk
from rspy_batch.publish.publication import publish_catalog
from rspy_batch.publish.run import plan_targets
from rspy_batch.stations.config import parse_dotenv

PUBLIC_URL = "http://127.0.0.1:8000/"
PLANTED_AWS_SECRET = "planted-aws-secret-Zq81xv0Lm3"


@pytest.fixture
def work(pipeline: Pipeline, tmp_path: Path) -> Pipeline:
    """A private copy of the working catalog (tests change it); staging is shared."""
    shutil.copytree(pipeline.catalog, tmp_path / "catalog")
    os.environ["RSPY_SECRETS_FILE"] = str(pipeline.secrets)
    return Pipeline(tmp_path / "catalog", pipeline.staging, pipeline.stations, pipeline.secrets)


def publish_cli(work: Pipeline, dest: Path | str, config: Path, *extra: str,
                env: dict[str, str] | None = None):  # noqa: ANN201
    return run_cli("publish", "--catalog", str(work.catalog), "--to", str(dest),
                   "--config", str(config), "--staging", str(work.staging),
                   "--stations", str(work.stations), *extra, env=env)


def tree(root: Path) -> dict[str, bytes]:
    """Every file of a published tree but the locks and leases (each run takes the
    collection leases anew; they are never served)."""
    return {key: p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".rspy-locks" not in p.parts
            and not (key := p.relative_to(root).as_posix()).startswith("_rspy/leases/")}


def public_keys(store: LocalStore) -> set[str]:
    """Every key reachable from the public root by child/item links."""
    return {"catalog.json"} | _reachable(store, "catalog.json")


def _reachable(store: LocalStore, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        key = todo.pop()
        doc = loads(store.read(key).data)
        for link in doc.get("links", []):
            if link["rel"] in ("child", "item"):
                target = layout.resolve_href(key, link["href"])
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
    return seen


def plant_secret_in_item(work: Pipeline, collection: str, secret: str) -> str:
    """Simulate a mapping bug that copied a station password into an item."""
    store = LocalStore(work.catalog)
    key = sorted(k for k in store.list(collection) if k.endswith(".json")
                 and "/catalog.json" not in k and "collection.json" not in k)[0]
    item = loads(store.read(key).data)
    item["properties"]["debug"] = f"login ok with {secret}"
    store.put(key, dumps(item))
    return item["id"]


def test_published_catalog_is_valid_public_and_holds_no_secret(work: Pipeline,
                                                               tmp_path: Path) -> None:
    secrets = parse_dotenv(work.secrets.read_text())
    password = next(v for k, v in secrets.items() if k.endswith("S1A_PASSWORD"))
    bad_item = plant_secret_in_item(work, RAW, password)
    dest = tmp_path / "public"
    config = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    result = publish_cli(work, dest, config, env={"AWS_SECRET_ACCESS_KEY": PLANTED_AWS_SECRET})
    assert result.returncode == 3, result.stderr[-3000:]  # the planted item is refused
    store = LocalStore(dest)

    report = validate_catalog(store)
    assert report.ok, report.errors[:10]
    assert report.orphans == []

    # Nothing private anywhere in what was published (files served to the public).
    station_root = work.stations.read_text().split("url: ", 1)[1].split("/", 3)[:3]
    needles = {*secrets.values(), PLANTED_AWS_SECRET, "/".join(station_root), "file://",
               "s3://", str(work.staging), str(work.catalog), "/odata/v1/"}
    for key, data in tree(dest).items():
        text = data.decode("utf-8", "replace")
        for needle in needles:
            assert needle not in text, f"{needle!r} leaked into {key}"
    for out in (result.stdout, result.stderr):
        assert password not in out and PLANTED_AWS_SECRET not in out

    # The planted item is named in the record, with the kind of leak, not the secret.
    (record,) = [r for r in iter_records(LocalStore(work.catalog), "publish", RAW)]
    assert [r.entity for r in record.rejected] == [bad_item]
    assert "registered secret" in record.rejected[0].reason
    assert password not in json.dumps(record.to_dict())

    # RELATIVE_PUBLISHED: only the root has a self link, equal to what the browser is given.
    root = loads(store.read("catalog.json").data)
    assert [lk["href"] for lk in root["links"] if lk["rel"] == "self"] == [
        PUBLIC_URL + "catalog.json"]
    assert root["stac_browser"]["crossOriginMedia"] == "anonymous"
    for key, item in walk_items(store, "catalog.json"):
        for link in item["links"]:
            assert "://" not in link["href"], (key, link)

    # The private collection is published under its owner's private root only.
    reachable = public_keys(store)
    assert not any(k.startswith("ops/") for k in reachable)
    assert "esa/catalog.json" in reachable
    private = _reachable(store, "ops/private/catalog.json")
    assert f"ops/private/{SESSIONS}/collection.json" in private
    sessions = loads(store.read(f"ops/private/{SESSIONS}/collection.json").data)
    assert sessions["owner"] == "ops"

    # Owner on collections and items (ownership extension), extents of what is published.
    coll = loads(store.read(f"esa/{PROCESSED}/collection.json").data)
    assert coll["owner"] == "esa"
    assert any("ownership" in e for e in coll["stac_extensions"])
    items = [it for _, it in walk_items(store, f"esa/{PROCESSED}/collection.json")]
    assert items and all(it["properties"]["owner"] == "esa" for it in items)
    lo = min(it["bbox"][0] for it in items)
    assert coll["extent"]["spatial"]["bbox"][0][0] == lo
    assert coll["summaries"]["processing:level"] == ["L2A-like"]


def test_processed_item_has_thumbnail_and_its_input(work: Pipeline, tmp_path: Path) -> None:
    dest = tmp_path / "public"
    config = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    assert publish_cli(work, dest, config).returncode == 0
    store = LocalStore(dest)
    (key, item), *_ = list(walk_items(store, f"esa/{PROCESSED}/collection.json"))
    thumb = item["assets"]["thumbnail"]
    assert thumb["href"].startswith("./") and "thumbnail" in thumb["roles"]
    png = store.read(layout.resolve_href(key, thumb["href"]))
    assert png is not None and png.data.startswith(b"\x89PNG")
    product = item["assets"]["product"]["href"]
    assert product.startswith(PUBLIC_URL + "data/")
    # The staged product is where the public URL says, relative to the served staging dir.
    assert (work.staging / product[len(PUBLIC_URL + "data/"):] / ".zmetadata").is_file()
    (link,) = [lk for lk in item["links"] if lk["rel"] == "derived_from"]
    source = loads(store.read(layout.resolve_href(key, link["href"])).data)
    assert source["id"] == link["title"] and source["collection"] == STATION
    # The station download and the session link are private: gone.
    for asset in source["assets"].values():
        assert "alternate" not in asset and asset["href"].startswith(PUBLIC_URL + "data/")
    assert not [lk for lk in source["links"] if lk["rel"] == "via"]


def test_republish_touches_nothing_and_new_products_touch_only_their_branch(
        work: Pipeline, pipeline: Pipeline, tmp_path: Path) -> None:
    dest = tmp_path / "public"
    config = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    assert publish_cli(work, dest, config).returncode == 0
    before = tree(dest)
    mtimes = {k: (dest / k).stat().st_mtime_ns for k in before}
    assert publish_cli(work, dest, config).returncode == 0
    assert tree(dest) == before
    assert {k: (dest / k).stat().st_mtime_ns for k in before} == mtimes
    records = list(iter_records(LocalStore(work.catalog), "publish", PROCESSED))
    assert records[-1].counts["published"] == 0
    assert records[-1].counts["unchanged"] == records[-1].counts["items"] > 0

    # A product of another week arrives (processed by the pipeline, like a cron run would).
    sim = make_simulator(tmp_path / "sim2")
    try:
        result = run_cli("process", "--processor", "s2-l1c", "--collection", STATION,
                         "--start", "2026-01-12", "--stop", "2026-01-26",
                         "--catalog", str(work.catalog), "--stations", str(sim.stations_file),
                         "--staging", str(tmp_path / "staging2"))
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        sim.stop()
    config = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    result = publish_cli(work, dest, config, "--collection", STATION, "--collection",
                         PROCESSED, "--start", "2026-01-12", "--stop", "2026-01-26")
    assert result.returncode == 0, result.stderr[-3000:]
    after = tree(dest)
    changed = {k for k in before if after.get(k) != before[k]}
    added = set(after) - set(before)
    assert added, "the new products were not published"
    # Old items are untouched; what changed is the branches above the new items.
    for key in changed:
        assert key.endswith(("catalog.json", "collection.json", ".parquet")) or \
            key.startswith("_rspy/"), key
    assert not any(k.endswith("/01/05/catalog.json") for k in changed)
    assert validate_catalog(LocalStore(dest)).ok


@pytest.mark.parametrize("crash_at", [0.05, 0.5, 0.95])
def test_crash_midway_never_links_a_missing_item_and_rerun_converges(
        work: Pipeline, tmp_path: Path, crash_at: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL))
    clean, dest = tmp_path / "clean", tmp_path / "crashed"
    calls = {"n": 0, "limit": 10**9}
    real_put = LocalStore.put

    def flaky_put(self: LocalStore, key: str, data: bytes, **kw: object) -> str:
        # The crash is simulated in this process, which lives on; so its lease must be
        # released, or the re-run would wait out the lease (a killed process's lease is
        # taken over at once on the same host: tests/test_lease.py).
        if self.root in (dest.resolve(), clean.resolve()) and \
                not key.startswith("_rspy/leases/"):
            calls["n"] += 1
            if calls["n"] > calls["limit"]:
                raise OSError("disk gone (injected)")
        return real_put(self, key, data, **kw)

    monkeypatch.setattr(LocalStore, "put", flaky_put)
    publish_catalog(str(work.catalog), str(clean), config=config, staging=str(work.staging))
    crash_after = int(calls["n"] * crash_at)  # that many writes of a clean publish succeed
    calls.update(n=0, limit=crash_after)
    with contextlib.suppress(OSError):  # per-collection failures are recorded, the root's raise
        publish_catalog(str(work.catalog), str(dest), config=config, staging=str(work.staging))
    monkeypatch.setattr(LocalStore, "put", real_put)
    assert calls["n"] > crash_after  # the crash happened
    # Whatever was written, a reader starting at the root finds no link to a missing file
    # (a root not written yet shows nothing at all).
    if (dest / "catalog.json").exists():
        report = validate_catalog(LocalStore(dest), schemas=False)
        assert not [e for e in report.errors if "missing" in e], report.errors[:5]

    publish_catalog(str(work.catalog), str(dest), config=config, staging=str(work.staging))
    assert tree(dest) == tree(clean)


def test_collection_made_private_leaves_the_public_tree(work: Pipeline, tmp_path: Path) -> None:
    dest = tmp_path / "public"
    config = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    assert publish_cli(work, dest, config).returncode == 0
    assert (dest / "esa" / RAW / "collection.json").exists()
    text = config.read_text().replace('  "prip-*": {owner: esa}',
                                      f'  "{RAW}": {{owner: esa, public: false}}\n'
                                      '  "prip-*": {owner: esa}')
    config.write_text(text)
    assert publish_cli(work, dest, config).returncode == 0
    store = LocalStore(dest)
    assert not [p for p in (dest / "esa" / RAW).rglob("*") if p.is_file()]
    assert not any(RAW in k for k in public_keys(store))
    assert f"esa/private/{RAW}/collection.json" in _reachable(store,
                                                              "esa/private/catalog.json")
    assert validate_catalog(store).ok


def test_bucket_policy_grants_exactly_the_public_tree_and_owner_prefixes(
        work: Pipeline, tmp_path: Path) -> None:
    dest = tmp_path / "public"
    config_path = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    assert publish_cli(work, dest, config_path).returncode == 0
    config = load_config(config_path)
    targets = plan_targets(open_store(work.catalog), config)
    policy = bucket_policy("pub-bucket", "cat", targets, config)

    def allowed(principal: str, key: str) -> bool:
        arn = f"arn:aws:s3:::pub-bucket/cat/{key}"
        for st in policy["Statement"]:
            who = st["Principal"] if st["Principal"] == "*" else st["Principal"]["AWS"]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if st["Action"] == "s3:GetObject" and who == principal and any(
                    fnmatch.fnmatchcase(arn, r) for r in resources):
                return True
        return False

    store = LocalStore(dest)
    reachable = public_keys(store)
    for key in tree(dest):
        if key.startswith("_rspy/"):
            assert not allowed("*", key), key
            continue
        public = key in reachable or key.startswith("esa/") and "/private/" not in key
        assert allowed("*", key) == public, key
        if key.startswith("ops/"):
            assert allowed("arn:aws:iam::111122223333:role/ops-read", key), key
    assert any(k.startswith("ops/private/") for k in tree(dest))
    # Printed by the CLI as JSON an administrator applies.
    result = publish_cli(work, "s3://pub-bucket/cat", config_path, "--print-policy")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Statement"][0]["Sid"] == "PublicReadCatalog"


def test_publish_to_s3_is_readable_over_http_with_cors(work: Pipeline, tmp_path: Path,
                                                       s3_bucket: str, s3_server: str) -> None:
    public_url = f"{s3_server}/{s3_bucket}/pub/"
    config = publish_config(tmp_path / "publish.yaml", work, public_url)
    result = publish_cli(work, f"s3://{s3_bucket}/pub", config)
    assert result.returncode == 0, result.stderr[-3000:]
    store = open_store(f"s3://{s3_bucket}/pub")
    assert validate_catalog(store).ok
    # Nothing is readable anonymously until an administrator applies the printed policy.
    assert requests.get(public_url + "catalog.json", timeout=10).status_code == 403
    policy = publish_cli(work, f"s3://{s3_bucket}/pub", config, "--print-policy")
    assert policy.returncode == 0, policy.stderr
    # moto evaluates an anonymous request against every Allow statement whatever its
    # principal, so the owner statements (checked by the policy test) are left out here.
    printed = json.loads(policy.stdout)
    printed["Statement"] = [st for st in printed["Statement"] if st["Principal"] == "*"]
    boto3.client("s3").put_bucket_policy(Bucket=s3_bucket, Policy=json.dumps(printed))
    private = f"ops/private/{SESSIONS}/collection.json"
    assert store.exists(private)
    assert requests.get(public_url + private, timeout=10).status_code == 403
    # Anonymous HTTP, as STAC Browser reads it.
    root = requests.get(public_url + "catalog.json", timeout=10)
    assert root.status_code == 200 and root.headers["Content-Type"] == "application/json"
    assert root.json()["links"][0] == {"rel": "self", "href": public_url + "catalog.json",
                                       "type": "application/json", "title": "Test catalog"}
    key, item = next(iter(walk_items(store, f"esa/{PROCESSED}/collection.json")))
    png = requests.get(public_url + layout.resolve_href(key, item["assets"]["thumbnail"]["href"]),
                       timeout=10)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    cors = boto3.client("s3").get_bucket_cors(Bucket=s3_bucket)["CORSRules"]
    assert cors[0]["AllowedOrigins"] == ["*"] and "GET" in cors[0]["AllowedMethods"]
    # The index answers like the JSON, from the bucket.
    bbox = [-180.0, -90.0, 180.0, 90.0]
    prefix = f"esa/{RAW}"
    assert query_index(f"s3://{s3_bucket}/pub", prefix, bbox=bbox) == query_walk(
        store, f"{prefix}/collection.json", bbox=bbox)


def test_presigned_assets_are_loadable_and_kept_until_half_life(
        tmp_path: Path, s3_bucket: str, s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rspy_batch.catalog.writer import CatalogWriter
    from rspy_batch.publish import run as publish_run

    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="staging/a/file.bin", Body=b"payload")
    source = LocalStore(tmp_path / "catalog")
    writer = CatalogWriter(source)
    writer.ensure_collection({"id": "col", "description": "d", "license": "other",
                              "stac_version": "1.1.0", "links": []})
    writer.upsert_items("col", [{
        "type": "Feature", "stac_version": "1.1.0", "id": "a", "geometry": None,
        "properties": {"datetime": "2026-01-05T00:00:00Z"}, "links": [],
        "assets": {"data": {"href": f"s3://{s3_bucket}/staging/a/file.bin",
                            "roles": ["data"]}}}])
    config = tmp_path / "publish.yaml"
    config.write_text(f"collections: {{col: {{owner: team}}}}\nassets:\n"
                      f"  - {{from: 's3://{s3_bucket}/staging/', presign: 3600}}\n")
    dest = tmp_path / "public"

    def publish() -> tuple[dict, int]:
        out = publish_catalog(str(source.root), str(dest), config=load_config(config))
        item = next(iter(walk_items(LocalStore(dest), "catalog.json")))[1]
        return item, out.results[0].counts["published"]

    first, written = publish()
    href = first["assets"]["data"]["href"]
    assert written == 1 and "X-Amz-Signature=" in href
    assert PLANTED_AWS_SECRET not in href and "rspy-test-secret" not in href
    assert requests.get(href, timeout=10).content == b"payload"
    assert publish() == (first, 0)  # not re-signed while fresh
    later = publish_run.datetime.now(publish_run.UTC) + publish_run.timedelta(minutes=31)
    original = publish_run._presign_due
    monkeypatch.setattr(publish_run, "_presign_due",
                        lambda entry, at=None: original(entry, later))
    again, written = publish()  # past half its life: signed and written again
    assert written == 1
    assert requests.get(again["assets"]["data"]["href"], timeout=10).content == b"payload"


def test_luigi_publish_task_is_complete_after_it_ran(work: Pipeline, tmp_path: Path) -> None:
    dest = tmp_path / "public"
    config = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    args = ["--module", "tasks.publish", "Publish", "--local-scheduler", "--catalog",
            str(work.catalog), "--to", str(dest), "--publish-config", str(config),
            "--staging", str(work.staging), "--stations", str(work.stations)]
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "luigi", *args], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    failures = [line for line in run.stderr.splitlines() if "ERROR" in line or "Error" in line]
    assert ":)" in run.stdout + run.stderr, "\n".join(failures[-20:]) or run.stderr[-3000:]
    assert validate_catalog(LocalStore(dest)).ok
    # Inputs were published first, so every product links the item it was made from.
    products = list(walk_items(LocalStore(dest), f"esa/{PROCESSED}/collection.json"))
    assert products and all(any(lk["rel"] == "derived_from" for lk in it["links"])
                            for _, it in products)
    from tasks.publish import PublishCollection

    task = PublishCollection(catalog=str(work.catalog), to=str(dest),
                             publish_config=str(config), staging=str(work.staging),
                             stations=str(work.stations), collection=PROCESSED)
    assert task.complete()
    # A changed working item makes it incomplete again.
    store = LocalStore(work.catalog)
    key = next(k for k in store.list(PROCESSED) if k.endswith(".json") and "/S02" in k)
    item = loads(store.read(key).data)
    item["properties"]["processing:facility"] = "elsewhere"
    store.put(key, dumps(item))
    assert not task.complete()


def test_manifest_digest_matches_published_bytes(work: Pipeline, tmp_path: Path) -> None:
    dest = tmp_path / "public"
    config = publish_config(tmp_path / "publish.yaml", work, PUBLIC_URL)
    assert publish_cli(work, dest, config).returncode == 0
    store = LocalStore(dest)
    manifests = [k for k in store.list("_rspy/publish") if k.endswith(".json")]
    assert manifests
    for mkey in manifests:
        prefix = mkey[len("_rspy/publish/"):].rsplit("/", 1)[0]
        for entry in loads(store.read(mkey).data)["items"].values():
            data = store.read(f"{prefix}/{entry['key']}").data
            assert hashlib.sha256(data).hexdigest() == entry["digest"]
