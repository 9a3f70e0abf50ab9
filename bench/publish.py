"""Publish throughput against two baselines, measured in one run.

    .venv/bin/python bench/publish.py [--items 10000] [--dir /dev/shm]

1. A working catalog of N synthetic items (one collection, three months, a staged asset
   each) written with the catalog writer (untimed).
2. ``publish_catalog`` into an empty destination (items, sub-catalogs, manifests, the
   stac-geoparquet index, collection, owner catalog, root); then again with nothing
   changed; then after 1% new items arrived for the last two days (a daily cron run). The
   month those items fall in has its index rebuilt from all of its items, so the cost of an
   incremental run grows with the size of the month it touches, not of the collection;
   and once more with ``start``/``stop`` limited to those days (what a cron run passes).
3. Baseline "copy": ``shutil.copytree`` of the working catalog (the bytes alone).
4. Baseline "pystac": ``Catalog.from_file`` of the working catalog, asset hrefs rewritten,
   ``normalize_hrefs`` + ``save(RELATIVE_PUBLISHED)``: what publishing with pystac costs.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pystac

from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.publish.config import parse_config
from rspy_batch.publish.publication import publish_catalog

COLLECTION = "prip-bench"


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def items(n: int, staging: str, seed: int, start: datetime, days: float = 90) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = start + timedelta(seconds=rng.uniform(0, days * 86400))
        x, y = rng.uniform(-170, 160), rng.uniform(-70, 60)
        out.append({
            "type": "Feature", "stac_version": "1.1.0", "id": f"ITEM_{seed}_{i:07d}",
            "geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 1, y], [x + 1, y + 1],
                                                             [x, y + 1], [x, y]]]},
            "bbox": [x, y, x + 1, y + 1],
            "properties": {"datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                           "platform": "sentinel-2b", "eo:cloud_cover": rng.uniform(0, 100)},
            "links": [],
            "assets": {"data": {"href": f"{staging}/{i:07d}.zip", "type": "application/zip",
                                "roles": ["data"]}},
            "stac_extensions": [],
        })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rspy-bench-publish-", dir=args.dir))
    staging = (work / "staging").as_uri()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        writer = CatalogWriter(LocalStore(work / "catalog"))
        writer.ensure_collection({"id": COLLECTION, "description": "bench", "license": "other",
                                  "stac_version": "1.1.0", "links": []})
        first = items(args.items, staging, 1, start)
        for i in range(0, args.items, 1000):
            writer.upsert_items(COLLECTION, first[i:i + 1000])
        config = parse_config({"collections": {COLLECTION: {"owner": "bench"}},
                               "assets": [{"from": staging, "url": "https://cdn.example/"}]})
        catalog, dest = str(work / "catalog"), str(work / "public")

        t_cold, out = timed(publish_catalog, catalog, dest, config=config)
        assert out.ok and out.results[0].counts["published"] == args.items, out.results
        t_again, out = timed(publish_catalog, catalog, dest, config=config)
        assert out.results[0].counts["published"] == 0
        # New products arrive for the latest days, as in a daily cron run.
        new = items(args.items // 100, staging, 2, start + timedelta(days=88), days=2)
        writer.upsert_items(COLLECTION, new)
        t_incr, out = timed(publish_catalog, catalog, dest, config=config)
        assert out.results[0].counts["published"] == len(new)
        newer = items(args.items // 100, staging, 3, start + timedelta(days=88), days=2)
        writer.upsert_items(COLLECTION, newer)
        t_window, out = timed(publish_catalog, catalog, dest, config=config,
                              start=start + timedelta(days=88), stop=start + timedelta(days=90))
        assert out.results[0].counts["published"] == len(newer)

        t_copy, _ = timed(shutil.copytree, work / "catalog", work / "copy")

        def with_pystac() -> None:
            root = pystac.Catalog.from_file(str(work / "copy" / "catalog.json"))
            for item in root.get_items(recursive=True):
                for asset in item.assets.values():
                    asset.href = asset.href.replace(staging, "https://cdn.example")
            root.normalize_hrefs(str(work / "pystac"))
            root.save(pystac.CatalogType.RELATIVE_PUBLISHED)

        t_pystac, _ = timed(with_pystac)
        total = args.items + len(new) + len(newer)
        print(f"{args.items} items (+{len(new)}), one collection, 3 months, on {work}")
        print(f"publish, empty destination:     {t_cold:7.2f} s  "
              f"{args.items / t_cold:8.0f} items/s")
        print(f"publish again, nothing changed: {t_again:7.2f} s")
        print(f"publish after 1% new items:     {t_incr:7.2f} s")
        print(f"the same, --start/--stop of the 2 days: {t_window:7.2f} s")
        print(f"baseline copytree (bytes only): {t_copy:7.2f} s  ({total} items)")
        print(f"baseline pystac read+save:      {t_pystac:7.2f} s  ({total} items)")
        print(f"ratio publish(cold)/copytree: {t_cold / t_copy:.2f}; "
              f"publish(cold)/pystac: {t_cold / t_pystac:.2f}; "
              f"incremental(1%)/cold: {t_incr / t_cold:.2f}; "
              f"incremental(1%, window)/cold: {t_window / t_cold:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
