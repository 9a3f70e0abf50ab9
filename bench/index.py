"""Search index build rate, and query time index vs JSON walk, measured in one run.

    .venv/bin/python bench/index.py [--items 20000] [--months 6] [--queries 10] [--dir /dev/shm]

1. N random items (10% without geometry, instants and intervals, varied asset sets) over
   M months are written with ``CatalogWriter`` into a local catalog under ``rspy/<cid>``
   (untimed: this is the JSON the index sits beside).
2. Build: the JSON is walked once (``walk_items``, timed on its own), then
   ``write_collection_index`` writes one stac-geoparquet file per month: items/s.
   A second build with nothing changed shows the cost of the no-op check.
3. Queries: Q random bbox + time queries, each answered by ``query_index`` (the index)
   and by the baseline ``query_walk`` (walk every JSON document, then ``matches``), with
   the answers checked equal. Prints the ratio walk / index.

Benchmarks belong on tmpfs (environment.md: ext4 after mass deletes is noisy).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rspy_batch.catalog import layout
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.walk import walk_items
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.publish.index import query_index, query_walk, write_collection_index

CID = "prip-s2b-msil1c"
PREFIX = f"rspy/{CID}"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def random_item(rng: random.Random, n: int, months: int) -> dict:
    t = T0 + timedelta(seconds=rng.uniform(0, months * 30 * 86400))
    props: dict = {"datetime": layout.format_datetime(t), "platform": "sentinel-2b",
                   "sat:absolute_orbit": rng.randint(1, 50000)}
    if rng.random() < 0.4:
        props["start_datetime"] = props["datetime"]
        props["end_datetime"] = layout.format_datetime(t + timedelta(hours=rng.uniform(0, 48)))
    if rng.random() < 0.5:
        props["eo:cloud_cover"] = round(rng.uniform(0, 100), 2)
    item = {"type": "Feature", "stac_version": "1.1.0", "stac_extensions": [],
            "id": f"S2B-{n:06d}", "geometry": None, "properties": props, "links": [],
            "assets": {k: {"href": f"./S2B-{n:06d}-{k}.bin", "roles": [k]}
                       for k in rng.sample(["data", "thumbnail", "metadata"], rng.randint(1, 3))}}
    if rng.random() >= 0.1:
        x0, y0 = rng.uniform(-10, 30), rng.uniform(35, 60)
        x1, y1 = x0 + rng.uniform(0.5, 2), y0 + rng.uniform(0.5, 2)
        item["bbox"] = [x0, y0, x1, y1]
        item["geometry"] = {"type": "Polygon", "coordinates": [
            [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    return item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--dir", default=None, help="where the catalog goes (tmpfs advised)")
    args = parser.parse_args()

    rng = random.Random(1)
    root = Path(tempfile.mkdtemp(prefix="rspy-bench-index-", dir=args.dir))
    try:
        items = [random_item(rng, n, args.months) for n in range(args.items)]
        writer = CatalogWriter(LocalStore(root / "rspy"))
        writer.ensure_collection({"id": CID, "description": CID, "license": "other",
                                  "links": [], "extent": {}})
        writer.upsert_items(CID, items)
        store = LocalStore(root)
        collection = f"{PREFIX}/collection.json"

        t = time.perf_counter()
        walked = [item for _key, item in walk_items(store, collection)]
        t_walk = time.perf_counter() - t
        t = time.perf_counter()
        written = write_collection_index(store, PREFIX, walked)
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        again = write_collection_index(store, PREFIX, walked)
        t_noop = time.perf_counter() - t
        assert not again
        size = sum((root / key).stat().st_size for key in written)

        queries = []
        for _ in range(args.queries):
            x0, y0 = rng.uniform(-10, 25), rng.uniform(35, 55)
            start = T0 + timedelta(days=rng.uniform(0, args.months * 30 - 10))
            queries.append(([x0, y0, x0 + 5, y0 + 5], start, start + timedelta(days=10)))
        t_index = t_json = 0.0
        hits = 0
        for bbox, start, stop in queries:
            t = time.perf_counter()
            got = query_index(str(root), PREFIX, bbox, start, stop)
            t_index += time.perf_counter() - t
            t = time.perf_counter()
            want = query_walk(store, collection, bbox, start, stop)
            t_json += time.perf_counter() - t
            assert got == want, (bbox, start, stop)
            hits += len(got)

        n = len(walked)
        print(f"{n} items over {args.months} months, {len(written)} month files, "
              f"{size / 1e6:.1f} MB of Parquet")
        print(f"  walk the JSON once (reading for the build) {t_walk:8.2f} s "
              f"({n / t_walk:,.0f} items/s)")
        print(f"  build the index from the items            {t_build:8.2f} s "
              f"({n / t_build:,.0f} items/s)")
        print(f"  rebuild, nothing changed (no write)       {t_noop:8.2f} s")
        print(f"  {len(queries)} bbox+time queries ({hits} hits in all), per query:")
        print(f"    query_index (the index)                 {t_index / len(queries):8.3f} s")
        print(f"    baseline: query_walk (JSON walk)        {t_json / len(queries):8.3f} s")
        print(f"ratio walk / index: {t_json / t_index:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
