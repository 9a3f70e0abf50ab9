"""Versioned output collections: ids, order, the version links of a series, and a
reprocessing end to end (processor 0.1.0, then its upgrade 0.2.0, over the same window),
published with the links rewritten to the published siblings."""

from __future__ import annotations

import importlib.util
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import make_simulator
from e2e import run_cli

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.reader import iter_items, read_json
from rspy_batch.catalog.storage import LocalStore, Store
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.catalog.versions import (
    is_linked,
    link_versions,
    series,
    version_links,
    version_order,
    versioned_id,
)
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.errors import ConfigError
from rspy_batch.processing.run import ProcessingSettings, process_window
from rspy_batch.processing.stac import output_collection
from rspy_batch.publish.config import parse_config
from rspy_batch.publish.publication import publish_catalog
from rspy_batch.templates import get_template
from rspy_batch.validation import validate_dict

HERE = Path(__file__).parent
COLLECTION = "auxip-s1a-aux-resorb"
BASE = f"{COLLECTION}-toy-bytes"
V1, V2 = f"{BASE}-v0.1.0", f"{BASE}-v0.2.0"
START, STOP = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 12, tzinfo=UTC)
VERSION_EXT = "https://stac-extensions.github.io/version/v1.1.0/schema.json"
RELS = ("latest-version", "predecessor-version", "successor-version")


# -- ids, order, links (pure) ----------------------------------------------------------

@pytest.mark.parametrize(("version", "expected"), [
    ("0.1.0", "base-v0.1.0"),
    ("1.0.0+local", "base-v1.0.0_local"),
    ("2.0rc1", "base-v2.0rc1"),
    ("1.0 beta/2", "base-v1.0_beta_2"),
    ("1..2", "base-v1._2"),
    ("é1", "base-v_1"),
])
def test_versioned_id_is_a_safe_collection_id(version: str, expected: str) -> None:
    assert versioned_id("base", version) == expected
    assert layout.unsafe_id_reason(expected) is None


def test_versioned_id_refuses_what_cannot_be_an_id() -> None:
    for base, version in [("base", ""), ("-base", "1"), ("a/b", "1"), ("b" * 200, "1")]:
        with pytest.raises(ValueError):
            versioned_id(base, version)


def test_versions_sort_as_versions_not_text() -> None:
    given = ["2.0", "1.10.0", "nightly", "1.9.0", "2.0rc1", "1.0.0+local", "1.0.0"]
    assert sorted(given, key=version_order) == [
        "nightly", "1.0.0", "1.0.0+local", "1.9.0", "1.10.0", "2.0rc1", "2.0"]


def _link(rel: str, other: str, here: str = "") -> dict[str, str]:
    href = "./collection.json" if other == here else f"../{other}/collection.json"
    return {"rel": rel, "href": href, "type": "application/json", "title": other}


def test_version_links_of_one_two_and_three_versions() -> None:
    assert version_links(["a"], "a") == [_link("latest-version", "a", "a")]
    assert version_links(["a", "b"], "a") == [_link("latest-version", "b"),
                                              _link("successor-version", "b")]
    assert version_links(["a", "b"], "b") == [_link("latest-version", "b", "b"),
                                              _link("predecessor-version", "a")]
    assert version_links(["a", "b", "c"], "a") == [_link("latest-version", "c"),
                                                   _link("successor-version", "b")]
    assert version_links(["a", "b", "c"], "b") == [_link("latest-version", "c"),
                                                   _link("predecessor-version", "a"),
                                                   _link("successor-version", "c")]
    assert version_links(["a", "b", "c"], "c") == [_link("latest-version", "c", "c"),
                                                   _link("predecessor-version", "b")]


# -- series and linking in a catalog ---------------------------------------------------

def _collection(cid: str, version: str | None) -> dict[str, Any]:
    return output_collection(collection_id=cid, input_collection={"id": "in"},
                             processor_name="p", processor_title="P", version=version or "0",
                             level="L1", product_type="T", versioned=version is not None)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and "_rspy" not in p.parts and ".rspy-locks" not in p.parts}


def test_series_orders_by_version_and_ignores_other_collections(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    writer = CatalogWriter(store)
    for version in ("1.10.0", "1.9.0", "1.0.0+local"):
        writer.ensure_collection(_collection(versioned_id("b", version), version))
    writer.ensure_collection(_collection("b-v3.0", "4.0"))   # id is not its version's
    writer.ensure_collection(_collection("b-v5.0", None))    # no version field
    writer.ensure_collection(_collection("bx-v1.0", "1.0"))  # another series
    writer.ensure_collection(_collection("b", None))         # the base itself
    assert series(store, "b") == [("b-v1.0.0_local", "1.0.0+local"), ("b-v1.9.0", "1.9.0"),
                                  ("b-v1.10.0", "1.10.0")]


def test_link_versions_links_each_way_keeps_deprecated_and_is_idempotent(
        tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    writer = CatalogWriter(store)
    ids = [versioned_id("b", v) for v in ("1.0", "1.9", "1.10")]
    for cid, version in zip(ids, ("1.0", "1.9", "1.10"), strict=True):
        writer.ensure_collection(_collection(cid, version))
    other = _collection("other", None)
    writer.ensure_collection(other)
    # A stale link of an earlier linking, and a campaign's own deprecation mark.
    writer.update(layout.collection_key(ids[0]), lambda doc: {
        **doc, "deprecated": True,
        "links": [*doc["links"], _link("latest-version", "gone"), _link("related", "other")]})
    untouched = (tmp_path / layout.collection_key("other")).read_bytes()

    assert [cid for cid, _ in link_versions(store, "b")] == ids
    docs = {cid: read_json(store, layout.collection_key(cid)) for cid in ids}
    for cid, doc in docs.items():
        got = sorted((lk["rel"], lk["href"]) for lk in doc["links"] if lk["rel"] in RELS)
        assert got == sorted((lk["rel"], lk["href"]) for lk in version_links(ids, cid))
        assert [lk for lk in doc["links"] if lk["rel"] == "latest-version"] == [
            _link("latest-version", ids[-1], cid)]
        for lk in doc["links"]:  # every version link resolves to a collection of the series
            if lk["rel"] in RELS:
                target = layout.resolve_href(layout.collection_key(cid), lk["href"])
                assert read_json(store, target)["id"] in ids
    assert docs[ids[0]]["deprecated"] is True
    assert "deprecated" not in docs[ids[1]] and "deprecated" not in docs[ids[2]]
    assert _link("related", "other") in docs[ids[0]]["links"]
    assert (tmp_path / layout.collection_key("other")).read_bytes() == untouched
    assert is_linked(store, "b")
    assert validate_catalog(store).ok

    before = _snapshot(tmp_path)
    link_versions(store, "b")
    assert _snapshot(tmp_path) == before


def test_concurrent_versions_end_linked_as_one_series(tmp_path: Path) -> None:
    """Versions finishing at once (campaigns on several machines): whatever the
    interleaving, the last linking sees the whole series."""
    store = LocalStore(tmp_path)
    numbers = [f"1.{n}" for n in range(6)]
    errors: list[BaseException] = []

    def campaign(version: str) -> None:
        try:
            CatalogWriter(store).ensure_collection(
                _collection(versioned_id("b", version), version))
            link_versions(store, "b")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=campaign, args=(v,)) for v in numbers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = [versioned_id("b", v) for v in numbers]
    assert [cid for cid, _ in series(store, "b")] == ids
    for cid in ids:
        doc = read_json(store, layout.collection_key(cid))
        assert sorted((lk["rel"], lk["href"]) for lk in doc["links"] if lk["rel"] in RELS) \
            == sorted((lk["rel"], lk["href"]) for lk in version_links(ids, cid))


def test_versioned_output_collection_validates_offline() -> None:
    doc = {**_collection("b-v1.0", "1.0"),
           "links": version_links(["b-v1.0"], "b-v1.0")}
    assert doc["version"] == "1.0" and VERSION_EXT in doc["stac_extensions"]
    assert validate_dict(doc) == []
    assert validate_dict({**doc, "version": 1})  # the vendored schema is really applied
    plain = _collection("b", None)
    assert "version" not in plain and VERSION_EXT not in plain["stac_extensions"]


# -- reprocessing end to end -----------------------------------------------------------

def _load_processor(directory: Path, name: str) -> Any:
    """The processor class of one installed toyproc version, without entry points."""
    spec = importlib.util.spec_from_file_location(name, directory / "toyproc.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ToyBytes()


def _process(processor: Any, catalog: Path, staging: Path) -> None:
    settings = ProcessingSettings(products=str(staging),
                                  output_collection=versioned_id(BASE, processor.version),
                                  version_of=BASE)
    record = process_window(processor, get_template(COLLECTION), START, STOP,
                            store=LocalStore(catalog), settings=settings)
    assert record.status == "complete", record.error


def _version_links_of(doc: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lk in doc["links"]:
        if lk["rel"] in RELS:
            out.setdefault(lk["rel"], []).append(lk["href"])
    return out


def _dangling(store: Store, root: Path) -> list[str]:
    """Relative links of any rel, in any stored JSON document, to a missing file."""
    bad = []
    for path in root.rglob("*.json"):
        key = path.relative_to(root).as_posix()
        if key.startswith("_rspy/") or ".rspy-locks" in key:
            continue
        for lk in loads(path.read_bytes()).get("links", []):
            href = lk["href"]
            if "://" not in href and not store.exists(layout.resolve_href(key, href)):
                bad.append(f"{key}: {lk['rel']} -> {href}")
    return bad


@pytest.fixture(scope="module")
def reprocessed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A window staged, processed by toyproc 0.1.0, then by its upgrade 0.2.0."""
    root = tmp_path_factory.mktemp("versions")
    sim = make_simulator(root / "sim")
    try:
        catalog, staging = root / "catalog", root / "staging"
        staged = run_cli("stage", "--collection", COLLECTION, "--start", "2026-01-05",
                         "--stop", "2026-01-12", "--catalog", str(catalog), "--stations",
                         str(sim.stations_file), "--staging", str(staging))
        assert staged.returncode == 0, staged.stderr[-3000:]
        _process(_load_processor(HERE / "plugins", "toyproc_v1"), catalog, staging)
        v1_tree = {k: v for k, v in _snapshot(catalog).items()
                   if k.startswith(f"{V1}/") and k != layout.collection_key(V1)}
        v2 = _load_processor(HERE / "plugins_v2", "toyproc_v2")
        _process(v2, catalog, staging)
        yield {"catalog": catalog, "staging": staging, "v1_tree": v1_tree, "v2": v2,
               "stations": sim.stations_file}
    finally:
        sim.stop()
        os.environ.pop("RSPY_SECRETS_FILE", None)


def test_reprocessing_keeps_v1_and_links_the_versions(reprocessed: Any) -> None:
    catalog = reprocessed["catalog"]
    store = LocalStore(catalog)
    # v1's items and sub-catalogs are byte for byte what v1's run wrote.
    after = {k: v for k, v in _snapshot(catalog).items()
             if k.startswith(f"{V1}/") and k != layout.collection_key(V1)}
    assert after == reprocessed["v1_tree"] and after
    inputs = {i["id"] for i in iter_items(store, COLLECTION)}
    for cid, version in ((V1, "0.1.0"), (V2, "0.2.0")):
        items = list(iter_items(store, cid))
        assert {lk["title"] for i in items for lk in i["links"]
                if lk["rel"] == "derived_from"} == inputs
        assert {str(i["properties"]["processing:software"]) for i in items} == {
            str({"rspy-batch/toy-bytes": version})}
        doc = read_json(store, layout.collection_key(cid))
        assert doc["version"] == version and VERSION_EXT in doc["stac_extensions"]
        assert "deprecated" not in doc
    assert _version_links_of(read_json(store, layout.collection_key(V1))) == {
        "latest-version": [f"../{V2}/collection.json"],
        "successor-version": [f"../{V2}/collection.json"]}
    assert _version_links_of(read_json(store, layout.collection_key(V2))) == {
        "latest-version": ["./collection.json"],
        "predecessor-version": [f"../{V1}/collection.json"]}
    report = validate_catalog(store)
    assert report.ok, report.errors[:5]
    assert report.orphans == []
    assert _dangling(store, catalog) == []


def test_second_run_of_v2_changes_nothing(reprocessed: Any) -> None:
    catalog, staging = reprocessed["catalog"], reprocessed["staging"]
    before = _snapshot(catalog), _snapshot(staging)
    _process(reprocessed["v2"], catalog, staging)
    assert (_snapshot(catalog), _snapshot(staging)) == before


def test_versioned_output_must_have_the_versioned_id(reprocessed: Any) -> None:
    settings = ProcessingSettings(products=str(reprocessed["staging"]),
                                  output_collection=f"{BASE}-v9", version_of=BASE)
    before = _snapshot(reprocessed["catalog"])
    with pytest.raises(ConfigError, match=V2):
        process_window(reprocessed["v2"], get_template(COLLECTION), START, STOP,
                       store=LocalStore(reprocessed["catalog"]), settings=settings)
    assert _snapshot(reprocessed["catalog"]) == before


def _publish(reprocessed: Any, dest: Path, config: dict[str, Any] | None = None,
             only: list[str] | None = None) -> None:
    outcome = publish_catalog(str(reprocessed["catalog"]), str(dest),
                              config=parse_config(config or {}),
                              staging=str(reprocessed["staging"]),
                              stations=str(reprocessed["stations"]), collections=only)
    assert outcome.ok, [r.record.error for r in outcome.results]


def _published(dest: Path, key: str) -> dict[str, Any]:
    return loads((dest / key).read_bytes())


def test_published_versions_link_their_published_siblings(reprocessed: Any,
                                                          tmp_path: Path) -> None:
    dest = tmp_path / "public"
    _publish(reprocessed, dest)
    store = LocalStore(dest)
    v1_key, v2_key = f"rspy-batch/{V1}/collection.json", f"rspy-batch/{V2}/collection.json"
    v1, v2 = _published(dest, v1_key), _published(dest, v2_key)
    assert _version_links_of(v1) == {"latest-version": [f"../{V2}/collection.json"],
                                     "successor-version": [f"../{V2}/collection.json"]}
    assert _version_links_of(v2) == {"latest-version": ["./collection.json"],
                                     "predecessor-version": [f"../{V1}/collection.json"]}
    for key, doc in ((v1_key, v1), (v2_key, v2)):
        for lk in doc["links"]:
            if lk["rel"] in RELS:
                assert _published(dest, layout.resolve_href(key, lk["href"]))["id"] == \
                    lk["title"]
    assert (v1["version"], v2["version"]) == ("0.1.0", "0.2.0")
    assert VERSION_EXT in v1["stac_extensions"] and VERSION_EXT in v2["stac_extensions"]
    report = validate_catalog(store)
    assert report.ok, report.errors[:5]
    assert _dangling(store, dest) == []

    before = _snapshot(dest)
    _publish(reprocessed, dest)
    assert _snapshot(dest) == before

    # Published one at a time, the newer first: the older one's publish links both ways,
    # to the same bytes as publishing both at once.
    apart = tmp_path / "apart"
    _publish(reprocessed, apart, only=[V2])
    assert _version_links_of(_published(apart, v2_key)) == {
        "latest-version": ["./collection.json"]}
    assert _dangling(LocalStore(apart), apart) == []
    _publish(reprocessed, apart, only=[V1])
    for key in (v1_key, v2_key):
        assert (apart / key).read_bytes() == (dest / key).read_bytes()


def test_link_to_a_sibling_its_readers_cannot_read_is_dropped(reprocessed: Any,
                                                              tmp_path: Path) -> None:
    dest = tmp_path / "public"
    _publish(reprocessed, dest, {"collections": {V1: {"owner": "ops", "public": False}}})
    store = LocalStore(dest)
    v1_key, v2_key = f"ops/private/{V1}/collection.json", f"rspy-batch/{V2}/collection.json"
    # The public v2 does not point into ops' private tree ...
    assert _version_links_of(_published(dest, v2_key)) == {
        "latest-version": ["./collection.json"]}
    # ... while ops' readers, who can read the public tree, are led to the newer version.
    assert _version_links_of(_published(dest, v1_key)) == {
        "latest-version": [f"../../../rspy-batch/{V2}/collection.json"],
        "successor-version": [f"../../../rspy-batch/{V2}/collection.json"]}
    report = validate_catalog(store)
    assert report.ok, report.errors[:5]
    assert _dangling(store, dest) == []
