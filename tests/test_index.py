"""The static search index: stac-geoparquet month files that answer a bbox + time query
with the same items as walking the JSON, locally and on S3, written incrementally."""

from __future__ import annotations

import io
import os
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import geopandas
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from stac_geoparquet.arrow import stac_table_to_items

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import dumps
from rspy_batch.catalog.storage import LocalStore, Store, open_store
from rspy_batch.catalog.walk import walk_items
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.publish.index import (
    PARQUET,
    index_key,
    matches,
    month_index_bytes,
    month_of,
    query_index,
    query_walk,
    write_collection_index,
    write_month_index,
)

OWNER = "rspy"
CIDS = ("prip-s2b-msil1c", "adgs-aux")
REGION = (-10.0, 35.0, 30.0, 60.0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
T_END = datetime(2026, 4, 1, tzinfo=UTC)
ASSET_KINDS = ("data", "thumbnail", "metadata", "quicklook")


def fmt(dt: datetime) -> str:
    return layout.format_datetime(dt)


def polygon(bbox: list[float]) -> dict:
    x0, y0, x1, y1 = bbox
    return {"type": "Polygon",
            "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def feature(iid: str, props: dict, bbox: list[float] | None, assets: dict | None = None) -> dict:
    item = {"type": "Feature", "stac_version": "1.1.0", "stac_extensions": [], "id": iid,
            "geometry": polygon(bbox) if bbox else None, "properties": props, "links": [],
            "assets": assets or {"data": {"href": f"./{iid}.bin", "roles": ["data"]}}}
    if bbox:
        item["bbox"] = bbox
    return item


def random_item(rng: random.Random, cid: str, n: int) -> dict:
    """Instants, intervals inside a month, intervals crossing into the next month (placed
    by start, datetime null), datetime in the middle of its interval; 10% no geometry;
    random asset sets and optional properties."""
    iid = f"{cid}-{n:04d}"
    span = (T_END - T0).total_seconds()
    t = T0 + timedelta(milliseconds=int(rng.uniform(0, span - 1) * 1000))
    kind = rng.random()
    if kind < 0.45:
        props: dict = {"datetime": fmt(t)}
    elif kind < 0.7:
        props = {"datetime": fmt(t), "start_datetime": fmt(t),
                 "end_datetime": fmt(t + timedelta(hours=rng.uniform(0.1, 72)))}
    elif kind < 0.9:
        props = {"datetime": None, "start_datetime": fmt(t),
                 "end_datetime": fmt(t + timedelta(days=rng.uniform(1, 40)))}
    else:
        props = {"datetime": fmt(t), "start_datetime": fmt(t - timedelta(days=rng.uniform(0, 20))),
                 "end_datetime": fmt(t + timedelta(days=rng.uniform(0, 20)))}
    props["platform"] = rng.choice(["sentinel-2a", "sentinel-2b"])
    if rng.random() < 0.5:
        props["eo:cloud_cover"] = round(rng.uniform(0, 100), 2)
    props["sat:absolute_orbit"] = rng.randint(1, 50000) if rng.random() < 0.7 else None
    bbox = None
    if rng.random() >= 0.1:
        x0 = round(rng.uniform(REGION[0], REGION[2]), 3)
        y0 = round(rng.uniform(REGION[1], REGION[3]), 3)
        bbox = [x0, y0, round(x0 + rng.uniform(0.2, 6), 3), round(y0 + rng.uniform(0.2, 6), 3)]
    assets = {}
    for kind_name in rng.sample(ASSET_KINDS, rng.randint(1, len(ASSET_KINDS))):
        asset: dict = {"href": f"./{iid}-{kind_name}.bin", "roles": [kind_name]}
        if kind_name == "data":
            asset["file:size"] = rng.randint(1, 10**9)
        assets[kind_name] = asset
    return feature(iid, props, bbox, assets)


def edge_items() -> list[dict]:
    """Hand-made items whose answers are known (far from the random region)."""
    return [
        feature("edge-touch", {"datetime": "2026-02-10T00:00:00.000Z"}, [1.0, 1.0, 2.0, 2.0]),
        feature("edge-stop", {"datetime": "2026-02-20T00:00:00.000Z"}, [0.0, 0.0, 0.5, 0.5]),
        # placed in January (datetime null), reaches into February
        feature("edge-span", {"datetime": None, "start_datetime": "2026-01-30T12:00:00.000Z",
                              "end_datetime": "2026-02-02T00:00:00.000Z"}, [0.0, 0.0, 0.5, 0.5]),
        # placed in January, valid until late March
        feature("edge-long", {"datetime": "2026-01-05T00:00:00.000Z",
                              "start_datetime": "2026-01-05T00:00:00.000Z",
                              "end_datetime": "2026-03-20T00:00:00.000Z"}, [0.0, 0.0, 0.5, 0.5]),
        # placed in February (datetime), starts in January
        feature("edge-early-start", {"datetime": "2026-02-15T00:00:00.000Z",
                                     "start_datetime": "2026-01-10T00:00:00.000Z",
                                     "end_datetime": "2026-02-20T00:00:00.000Z"},
                [0.0, 0.0, 0.5, 0.5]),
        feature("edge-ends-at", {"datetime": None, "start_datetime": "2026-03-01T00:00:00.000Z",
                                 "end_datetime": "2026-03-05T00:00:00.000Z"}, [0.0, 0.0, 0.5, 0.5]),
        feature("edge-nogeom", {"datetime": "2026-02-10T00:00:00.000Z"}, None),
    ]


def collection_doc(cid: str) -> dict:
    return {"type": "Collection", "stac_version": "1.1.0", "id": cid, "description": cid,
            "license": "other", "links": [], "extent": {}}


@dataclass
class Published:
    root: Path
    store: LocalStore
    items: dict[str, list[dict]]  # cid -> items

    def prefix(self, cid: str) -> str:
        return f"{OWNER}/{cid}"


def publish(root: Path, items: dict[str, list[dict]]) -> LocalStore:
    """The published layout: ``catalog.json`` → ``rspy/catalog.json`` (owner catalog,
    written by CatalogWriter into the owner's folder) → ``rspy/<cid>/collection.json``…"""
    owner = CatalogWriter(LocalStore(root / OWNER))
    for cid, its in items.items():
        owner.ensure_collection(collection_doc(cid))
        owner.upsert_items(cid, its)
    store = LocalStore(root)
    store.put(layout.ROOT, dumps({
        "type": "Catalog", "stac_version": "1.1.0", "id": "public", "description": "root",
        "links": [{"rel": "self", "href": "https://example.invalid/catalog.json"},
                  {"rel": "root", "href": "./catalog.json"},
                  {"rel": "child", "href": f"./{OWNER}/catalog.json"},
                  {"rel": "child", "href": "https://elsewhere.invalid/catalog.json"}]}))
    return store


def build_index(store: Store, cids: tuple[str, ...] = CIDS) -> list[str]:
    changed = []
    for cid in cids:
        walked = [item for _key, item in walk_items(store, f"{OWNER}/{cid}/collection.json")]
        changed += write_collection_index(store, f"{OWNER}/{cid}", walked)
    return changed


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    rng = random.Random(20260105)
    items = {cid: [random_item(rng, cid, n) for n in range(160)] for cid in CIDS}
    items[CIDS[0]] += edge_items()
    root = tmp_path_factory.mktemp("published")
    store = publish(root, items)
    build_index(store)
    return Published(root, store, items)


def random_queries(rng: random.Random, count: int) -> list[tuple]:
    out = []
    for _ in range(count):
        bbox = None
        if rng.random() < 0.8:
            x0 = rng.uniform(REGION[0] - 3, REGION[2])
            y0 = rng.uniform(REGION[1] - 3, REGION[3])
            bbox = [x0, y0, x0 + rng.uniform(0.5, 15), y0 + rng.uniform(0.5, 15)]
        start = stop = None
        if rng.random() < 0.85:
            start = T0 - timedelta(days=10) + timedelta(seconds=rng.uniform(0, 110 * 86400))
            if rng.random() < 0.3:
                start = None
            if rng.random() < 0.85:
                begin = start or T0
                stop = begin + timedelta(seconds=rng.uniform(3600, 30 * 86400))
        out.append((bbox, start, stop))
    return out


def day(month: int, d: int, hour: int = 0) -> datetime:
    return datetime(2026, month, d, hour, tzinfo=UTC)


EDGE_QUERIES: list[tuple[tuple, set[str], set[str]]] = [
    # (bbox, start, stop), ids that must be in the answer, ids that must not
    ((None, None, None), {"edge-nogeom", "edge-touch", "edge-long"}, set()),
    (([2.0, 2.0, 3.0, 3.0], None, None), {"edge-touch"}, {"edge-nogeom", "edge-stop"}),
    (([1.5, 1.5, 1.6, 1.6], None, None), {"edge-touch"}, set()),  # query inside the item
    (([2.0001, 2.0001, 3.0, 3.0], None, None), set(), {"edge-touch"}),
    (([100.0, -80.0, 101.0, -79.0], None, None), set(), {"edge-touch"}),  # empty
    ((None, day(2, 20), day(2, 21)), {"edge-stop", "edge-early-start"}, set()),
    ((None, day(2, 19), day(2, 20)), {"edge-early-start"}, {"edge-stop"}),
    ((None, day(2, 1), day(2, 3)), {"edge-span"}, set()),
    ((None, day(3, 10), day(3, 11)), {"edge-long"}, {"edge-span"}),
    ((None, day(1, 10, 12), day(1, 11)), {"edge-early-start", "edge-long"}, {"edge-stop"}),
    ((None, day(3, 5), day(3, 6)), {"edge-ends-at", "edge-long"}, set()),
    ((None, day(2, 10), day(2, 10, 1)), {"edge-nogeom", "edge-touch"}, set()),
    ((None, None, day(1, 1)), set(), {"edge-long"}),
    ((None, day(5, 1), None), set(), {"edge-long"}),
    (([0.0, 0.0, 0.5, 0.5], day(2, 1), None), {"edge-span", "edge-stop", "edge-ends-at"},
     {"edge-nogeom", "edge-touch"}),
]


# -- query semantics -----------------------------------------------------------------

def test_matches_semantics() -> None:
    instant = feature("i", {"datetime": "2026-02-01T00:00:00.000Z"}, [0.0, 0.0, 1.0, 1.0])
    assert matches(instant, None, None, None)
    assert matches(instant, None, day(2, 1), day(2, 2))  # at start: in
    assert not matches(instant, None, day(1, 31), day(2, 1))  # at stop: out
    assert matches(instant, [1.0, 1.0, 2.0, 2.0], None, None)  # corner touch
    assert matches(instant, [0.2, 0.2, 0.3, 0.3], None, None)  # query inside item
    assert matches(instant, [-1.0, -1.0, 0.5, 0.5], None, None)  # partial overlap
    assert not matches(instant, [1.0001, 0.0, 2.0, 1.0], None, None)
    assert matches(instant, [0.5, 0.5, 0.0, 9.0, 9.0, 5.0], None, None)  # 3D query
    interval = feature("j", {"datetime": None, "start_datetime": "2026-01-30T00:00:00.000Z",
                             "end_datetime": "2026-02-02T00:00:00.000Z"}, None)
    assert matches(interval, None, day(2, 2), None)  # closed at its end
    assert not matches(interval, None, None, day(1, 30))  # stop excludes its start
    assert matches(interval, None, datetime(2026, 2, 1), datetime(2026, 2, 3))  # naive = UTC
    assert not matches(interval, [0.0, 0.0, 1.0, 1.0], None, None)  # no bbox
    timeless = feature("k", {}, None)
    assert matches(timeless, None, None, None)
    assert not matches(timeless, None, day(1, 1), None)


# -- walking --------------------------------------------------------------------------

def test_walk_follows_links_once_sorted_and_skips_missing(published: Published) -> None:
    walked = list(walk_items(published.store, layout.ROOT))
    keys = [key for key, _ in walked]
    assert keys == sorted(set(keys))
    expected = {item["id"] for its in published.items.values() for item in its}
    assert {item["id"] for _, item in walked} == expected and len(walked) == len(expected)
    owner_only = [key for key, _ in walk_items(published.store, f"{OWNER}/catalog.json")]
    assert owner_only == keys

    # a link to a missing document and one leaving the store are skipped
    day_key = next(key for key in keys if "edge-touch" in key).rsplit("/", 2)[0] + "/catalog.json"
    doc = published.store.read(day_key)
    assert doc is not None
    broken = LocalStore(published.root.parent / "walk-copy")
    for key in published.store.list(f"{OWNER}/{CIDS[0]}"):
        broken.put(key, published.store.read(key).data)
    from rspy_batch.catalog.jsonio import loads

    day_doc = loads(doc.data)
    day_doc["links"] += [{"rel": "item", "href": "./gone/gone.json"},
                         {"rel": "child", "href": "../../../../../../../outside.json"}]
    broken.put(day_key, dumps(day_doc))
    again = [key for key, _ in walk_items(broken, f"{OWNER}/{CIDS[0]}/collection.json")]
    assert again == [key for key in keys if key.startswith(f"{OWNER}/{CIDS[0]}/")]


# -- index vs walk --------------------------------------------------------------------

def compare(query_idx: Callable[..., list[str]], query_json: Callable[..., list[str]],
            queries: list[tuple]) -> list[int]:
    sizes = []
    for bbox, start, stop in queries:
        got = query_idx(bbox, start, stop)
        want = query_json(bbox, start, stop)
        assert got == want, (bbox, start, stop)
        sizes.append(len(got))
    return sizes


def test_index_answers_like_the_walk_locally(published: Published) -> None:
    queries = random_queries(random.Random(7), 30)
    for cid in CIDS:
        prefix = published.prefix(cid)
        sizes = compare(
            lambda b, s, e, p=prefix: query_index(str(published.root), p, b, s, e),
            lambda b, s, e, p=prefix: query_walk(published.store, f"{p}/collection.json",
                                                 b, s, e),
            queries)
        # the random queries are neither all empty nor all everything
        total = len(published.items[cid])
        assert sum(1 for n in sizes if 0 < n < total) >= 10, sizes
        assert query_index(str(published.root), prefix) == sorted(
            item["id"] for item in published.items[cid])


@pytest.mark.parametrize(("query", "present", "absent"), EDGE_QUERIES)
def test_edge_queries(published: Published, query: tuple, present: set[str],
                      absent: set[str]) -> None:
    prefix = published.prefix(CIDS[0])
    got = query_index(published.root.as_uri(), prefix, *query)
    assert got == query_walk(published.store, f"{prefix}/collection.json", *query)
    assert present <= set(got) and not absent & set(got)
    if query[0] == [100.0, -80.0, 101.0, -79.0]:
        assert got == []


def test_index_answers_like_the_walk_on_s3(published: Published, s3_bucket: str) -> None:
    s3 = open_store(f"s3://{s3_bucket}/pub")
    cid = CIDS[0]  # one collection: each request to the Python S3 server costs ~10 ms
    prefix = published.prefix(cid)
    collection = f"{prefix}/collection.json"
    keys = [k for k in published.store.list(prefix) if "/index/" not in k]

    def copy(key: str) -> None:
        s3.put(key, published.store.read(key).data)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(copy, keys))
    walked = [item for _key, item in walk_items(s3, collection)]
    assert sorted(write_collection_index(s3, prefix, walked)) == sorted(
        published.store.list(f"{prefix}/index"))
    for key in published.store.list(f"{prefix}/index"):  # S3 gets the bytes built locally
        assert s3.read(key).data == published.store.read(key).data

    location = f"s3://{s3_bucket}/pub"
    queries = random_queries(random.Random(11), 12) + [q for q, _, _ in EDGE_QUERIES]
    assert query_walk(s3, collection, *queries[0]) == query_walk(
        published.store, collection, *queries[0])
    for bbox, start, stop in queries:
        got = query_index(location, prefix, bbox, start, stop)
        # the one S3 walk above serves as every query's reference answer
        assert got == sorted(it["id"] for it in walked if matches(it, bbox, start, stop))
        assert got == query_index(str(published.root), prefix, bbox, start, stop)


# -- the files ------------------------------------------------------------------------

def test_months_hold_items_by_placing_datetime(published: Published) -> None:
    prefix = published.prefix(CIDS[0])
    files = sorted(k for k in published.store.list(f"{prefix}/index"))
    assert files == [index_key(prefix, "2026", m) for m in ("01", "02", "03")]
    span = pq.read_table(published.root / index_key(prefix, "2026", "01"), columns=["id"])
    assert {"edge-span", "edge-long"} <= set(span.column("id").to_pylist())
    feb = pq.read_table(published.root / index_key(prefix, "2026", "02"), columns=["id"])
    assert "edge-early-start" in feb.column("id").to_pylist()


def test_pyarrow_and_geopandas_read_the_index(published: Published) -> None:
    prefix = published.prefix(CIDS[0])
    index_dir = published.root / prefix / "index"
    items = published.items[CIDS[0]]
    no_geometry = sorted(item["id"] for item in items if item["geometry"] is None)
    assert len(no_geometry) >= 5

    table = pq.read_table(index_dir)
    assert sorted(table.column("id").to_pylist()) == sorted(item["id"] for item in items)
    assert set(table.column("month").to_pylist()) == {1, 2, 3}
    assert {"bbox", "geometry", "datetime", "start_datetime", "end_datetime",
            "year", "month"} <= set(table.column_names)

    dataset = ds.dataset(index_dir, format="parquet", partitioning="hive")
    feb = dataset.to_table(filter=ds.field("month") == 2, columns=["id"])
    assert sorted(feb.column("id").to_pylist()) == sorted(
        item["id"] for item in items if month_of(item) == ("2026", "02"))

    frame = geopandas.read_parquet(index_dir)
    assert len(frame) == len(items) and frame.crs.to_epsg() == 4326
    assert sorted(frame.loc[frame.geometry.isna(), "id"]) == no_geometry
    one = geopandas.read_parquet(published.root / index_key(prefix, "2026", "02"))
    row = one.set_index("id").loc["edge-touch"]
    assert row.geometry.bounds == (1.0, 1.0, 2.0, 2.0)


def test_month_file_round_trips_and_keeps_asset_sets() -> None:
    rng = random.Random(3)
    items = [random_item(rng, "c", n) for n in range(40)]
    items = [it for it in items if it["geometry"] is not None]
    table = pq.read_table(io.BytesIO(month_index_bytes(items)))
    back = {item["id"]: item for item in stac_table_to_items(table)}
    for item in items:
        got = back[item["id"]]
        assert set(got["assets"]) == set(item["assets"])
        assert got["bbox"] == item["bbox"]
        assert got["geometry"]["coordinates"] == item["geometry"]["coordinates"]
        assert got["properties"]["platform"] == item["properties"]["platform"]


def test_bytes_are_reproducible() -> None:
    rng = random.Random(5)
    items = [random_item(rng, "c", n) for n in range(60)] + edge_items()

    def reorder(value: object) -> object:
        if isinstance(value, dict):
            return {k: reorder(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reorder(v) for v in value]
        return value

    shuffled = [reorder(item) for item in items]
    random.Random(1).shuffle(shuffled)
    first = month_index_bytes(items)
    assert month_index_bytes(items) == first
    assert month_index_bytes(shuffled) == first
    assert month_index_bytes(items[:-1]) != first


def test_index_is_incremental(tmp_path: Path) -> None:
    rng = random.Random(9)
    cid = CIDS[0]
    items = {cid: [random_item(rng, cid, n) for n in range(60)]}
    store = publish(tmp_path / "pub", items)
    prefix = f"{OWNER}/{cid}"
    first = build_index(store, (cid,))
    assert first == [index_key(prefix, "2026", m) for m in ("01", "02", "03")]

    def state() -> dict[str, tuple[bytes, int, int]]:
        out = {}
        for key in store.list(f"{prefix}/index"):
            stat = os.stat(tmp_path / "pub" / key)
            out[key] = (store.read(key).data, stat.st_ino, stat.st_mtime_ns)
        return out

    before = state()
    puts: list[str] = []
    real_put = store.put

    def recording_put(key: str, data: bytes, **kwargs: object) -> str:
        puts.append(key)
        assert key.endswith("catalog.json") or kwargs.get("content_type") == PARQUET
        return real_put(key, data, **kwargs)  # type: ignore[arg-type]

    store.put = recording_put  # type: ignore[method-assign]
    assert build_index(store, (cid,)) == [] and puts == []  # nothing changed: no write

    feb_item = random_item(random.Random(1), cid, 999)
    feb_item["properties"] = {"datetime": "2026-02-14T10:00:00.000Z"}
    CatalogWriter(LocalStore(tmp_path / "pub" / OWNER)).upsert_items(cid, [feb_item])
    feb = index_key(prefix, "2026", "02")
    assert build_index(store, (cid,)) == [feb]
    assert [k for k in puts if k.endswith(".parquet")] == [feb]
    after = state()
    assert {k for k in after if after[k] != before[k]} == {feb}
    assert feb_item["id"] in query_index(str(tmp_path / "pub"), prefix, None,
                                         day(2, 14), day(2, 15))

    # an emptied month loses its file; writing it again restores it
    assert write_month_index(store, prefix, "2026", "03", []) == index_key(prefix, "2026", "03")
    assert not store.exists(index_key(prefix, "2026", "03"))
    assert write_month_index(store, prefix, "2026", "03", []) is None
    assert build_index(store, (cid,)) == [index_key(prefix, "2026", "03")]
    assert state()[index_key(prefix, "2026", "03")][0] == before[index_key(prefix, "2026", "03")][0]


def test_months_are_pruned_by_name_and_footer(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A month outside the query is read only when its footer says an interval reaches
    into the query."""
    import rspy_batch.publish.index as index

    store = LocalStore(tmp_path)
    jan = [feature(f"jan-{n}", {"datetime": f"2026-01-{n + 1:02d}T00:00:00.000Z"}, None)
           for n in range(5)]
    feb = [feature("feb-0", {"datetime": "2026-02-03T00:00:00.000Z"}, None)]
    mar = [feature("mar-long", {"datetime": "2026-03-01T00:00:00.000Z",
                                "start_datetime": "2026-01-20T00:00:00.000Z",
                                "end_datetime": "2026-03-02T00:00:00.000Z"}, None)]
    write_collection_index(store, "o/c", jan + feb + mar)
    read: list[str] = []
    real = index._read_rows
    monkeypatch.setattr(index, "_read_rows",
                        lambda fs, path, expr: read.append(path) or real(fs, path, expr))
    assert query_index(str(tmp_path), "o/c", None, day(2, 1), day(2, 28)) == ["feb-0", "mar-long"]
    assert sorted(p.split("/")[-2] for p in read) == ["month=02", "month=03"]
    read.clear()
    assert query_index(str(tmp_path), "o/c", None, day(2, 5), day(2, 6)) == ["mar-long"]
    assert sorted(p.split("/")[-2] for p in read) == ["month=02", "month=03"]
    read.clear()
    assert query_index(str(tmp_path), "o/c", None, day(3, 3), None) == []
    assert sorted(p.split("/")[-2] for p in read) == ["month=03"]


def test_query_of_a_collection_without_index(tmp_path: Path) -> None:
    assert query_index(str(tmp_path), "rspy/none", [0, 0, 1, 1], day(1, 1), day(2, 1)) == []
