"""The catalog writer and its stores: layout, incrementality, crash order, races."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.reader import iter_items
from rspy_batch.catalog.storage import LocalStore, S3Store, Store, open_store
from rspy_batch.catalog.validate import validate_catalog
from rspy_batch.catalog.writer import CatalogWriter, merge_extent
from rspy_batch.errors import ConflictError

COLLECTION = {"type": "Collection", "stac_version": "1.1.0", "id": "coll",
              "description": "test collection", "license": "other", "links": [],
              "extent": {}}


def make_item(i: int, day: int = 1, bbox: list[float] | None = None) -> dict:
    dt = datetime(2026, 1, day, 10, tzinfo=UTC) + timedelta(minutes=i)
    item = {"type": "Feature", "stac_version": "1.1.0", "stac_extensions": [],
            "id": f"item-{day:02d}-{i:04d}", "geometry": None,
            "properties": {"datetime": layout.format_datetime(dt)},
            "links": [], "assets": {"data": {"href": f"https://station/{i}", "roles": ["data"]}}}
    if bbox:
        x0, y0, x1, y1 = bbox
        item["geometry"] = {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1],
                                                                [x0, y1], [x0, y0]]]}
        item["bbox"] = bbox
    return item


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "catalog")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Store(f"s3://{bucket}/catalogs/main")


def snapshot(store: Store) -> dict[str, bytes]:
    return {k: store.read(k).data for k in sorted(store.list())}


def test_items_land_in_day_catalogs_and_validate(store: Store) -> None:
    writer = CatalogWriter(store)
    writer.ensure_collection(COLLECTION)
    items = [make_item(i, day=1 + i % 3, bbox=[i, 0, i + 1, 1]) for i in range(9)]
    result = writer.upsert_items("coll", items)
    assert sorted(result.added) == sorted(it["id"] for it in items)
    report = validate_catalog(store, schemas=True)
    assert report.ok, report.errors
    assert report.items == 9 and report.orphans == []
    assert store.exists("coll/2026/01/02/catalog.json")
    assert store.exists("coll/2026/01/03/item-03-0002/item-03-0002.json")
    coll = loads(store.read("coll/collection.json").data)
    assert coll["extent"]["spatial"]["bbox"][0] == [0, 0, 9, 1]
    assert coll["extent"]["temporal"]["interval"][0] == ["2026-01-01T10:00:00.000Z",
                                                          "2026-01-03T10:08:00.000Z"]
    got = [it["id"] for it in iter_items(store, "coll", datetime(2026, 1, 2, tzinfo=UTC),
                                         datetime(2026, 1, 3, tzinfo=UTC))]
    assert sorted(got) == sorted(it["id"] for it in items if it["id"].startswith("item-02"))


def test_rerun_writes_nothing_and_update_touches_only_its_branch(store: Store) -> None:
    writer = CatalogWriter(store)
    writer.ensure_collection(COLLECTION)
    items = [make_item(i, day=1 + i % 2) for i in range(6)]
    writer.upsert_items("coll", items)
    before = snapshot(store)
    versions = {k: store.read(k).version for k in before}

    again = writer.upsert_items("coll", items)
    assert again.unchanged and not again.added and not again.updated
    assert {k: store.read(k).version for k in before} == versions

    changed = make_item(0, day=1)
    changed["properties"]["title"] = "changed at the station"
    result = writer.upsert_items("coll", [changed])
    assert result.updated == [changed["id"]]
    after = snapshot(store)
    touched = {k for k in after if after[k] != before.get(k)}
    assert touched == {f"coll/2026/01/01/{changed['id']}/{changed['id']}.json"}


def test_adding_a_day_touches_only_its_ancestors(store: Store) -> None:
    writer = CatalogWriter(store)
    writer.ensure_collection(COLLECTION)
    writer.upsert_items("coll", [make_item(i, day=1) for i in range(3)])
    before = snapshot(store)
    new = make_item(0, day=5)
    writer.upsert_items("coll", [new])
    after = snapshot(store)
    touched = {k for k in after if after[k] != before.get(k)}
    assert touched == {f"coll/2026/01/05/{new['id']}/{new['id']}.json",
                       f"_rspy/ids/coll/{new['id']}.json",  # where the new item is
                       "coll/2026/01/05/catalog.json", "coll/2026/01/catalog.json",
                       "coll/collection.json"}  # the extent grew; root and year untouched


def test_conditional_put_detects_lost_race(store: Store) -> None:
    store.put("x.json", b"{}", expect=None)
    with pytest.raises(ConflictError):
        store.put("x.json", b"{}", expect=None)
    version = store.read("x.json").version
    store.put("x.json", b'{"a": 1}', expect=version)
    with pytest.raises(ConflictError):
        store.put("x.json", b'{"a": 2}', expect=version)
    assert loads(store.read("x.json").data) == {"a": 1}


def test_concurrent_read_modify_write_loses_no_update(store: Store) -> None:
    writer = CatalogWriter(store, cas_attempts=500)
    store.put("counter.json", b'{"n": 0, "who": []}', expect=None)

    def bump(worker: int) -> None:
        for k in range(10):
            tag = f"{worker}-{k}"
            writer.update("counter.json",
                          lambda d, tag=tag: {"n": d["n"] + 1, "who": d["who"] + [tag]})

    threads = [threading.Thread(target=bump, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = loads(store.read("counter.json").data)
    assert final["n"] == 40 and len(set(final["who"])) == 40


def test_crash_after_item_write_leaves_orphan_not_broken_link(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "c")
    writer = CatalogWriter(store)
    writer.ensure_collection(COLLECTION)

    class Crash(Exception):
        pass

    original = writer._link_items

    def crash(*args: object) -> None:
        raise Crash

    writer._link_items = crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        writer.upsert_items("coll", [make_item(1)])
    report = validate_catalog(store)
    assert report.ok and report.items == 0
    assert report.orphans == [layout.item_key("coll", "item-01-0001",
                                              datetime(2026, 1, 1, 10, 1, tzinfo=UTC))]
    writer._link_items = original  # type: ignore[method-assign]
    writer.upsert_items("coll", [make_item(1)])
    report = validate_catalog(store)
    assert report.ok and report.items == 1 and report.orphans == []


def test_unsafe_item_ids_are_refused(tmp_path: Path) -> None:
    writer = CatalogWriter(LocalStore(tmp_path / "c"))
    writer.ensure_collection(COLLECTION)
    for bad in ("../evil", "a/b", "x\x00y", "..", "a" * 300, "catalog.json", "collection.json"):
        item = make_item(1)
        item["id"] = bad
        with pytest.raises(ValueError):
            writer.upsert_items("coll", [item])
    assert not list((tmp_path / "c").rglob("*evil*"))


def test_merge_extent_replaces_placeholder_then_grows() -> None:
    empty = {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
             "temporal": {"interval": [[None, None]]}}
    first = merge_extent(empty, [1, 2, 3, 4], ["2026-01-02T00:00:00.000Z",
                                               "2026-01-03T00:00:00.000Z"])
    assert first["spatial"]["bbox"][0] == [1, 2, 3, 4]
    grown = merge_extent(first, [0, 3, 2, 5], ["2026-01-01T00:00:00.000Z", None])
    assert grown["spatial"]["bbox"][0] == [0, 2, 3, 5]
    assert grown["temporal"]["interval"][0] == ["2026-01-01T00:00:00.000Z",
                                                "2026-01-03T00:00:00.000Z"]


def test_open_store_dispatch(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store(f"file://{tmp_path}"), LocalStore)
    assert isinstance(open_store("s3://bucket/prefix"), S3Store)
    with pytest.raises(Exception, match="unsupported"):
        open_store("ftp://host/x")
