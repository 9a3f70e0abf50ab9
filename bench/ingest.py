"""Ingest throughput against two baselines, measured in one run.

    .venv/bin/python bench/ingest.py [--products 100000] [--dir /dev/shm]

1. Start the station simulator with ~N Sentinel-2 L1C products in January 2026.
2. ``rspy-batch ingest`` path: ``ingest_window`` over the month (station paging over HTTP,
   mapping, catalog writes) into an empty local catalog; then the same again (re-ingest,
   nothing changed).
3. Catalog writer alone: ``CatalogWriter.upsert_items`` of the already-mapped items.
4. Baseline "raw JSON": the same item dicts written directly as files (orjson, one folder
   per item, same day layout), no catalogs, no checks: the floor for any writer.
5. Baseline "pystac": the same items in pystac objects, same layout (collection → day
   catalogs), ``normalize_hrefs`` + ``save(SELF_CONTAINED)`` (object construction untimed).

Benchmarks belong on tmpfs (environment.md: ext4 after mass deletes is noisy).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pystac

from rspy_batch.catalog import layout
from rspy_batch.catalog.storage import LocalStore
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.ingest import ingest_merge, ingest_window, search
from rspy_batch.mapping import MAPPERS
from rspy_batch.simulator import SimConfig, Simulator
from rspy_batch.stations.client import ODataClient
from rspy_batch.stations.config import load_stations
from rspy_batch.templates import get_template

START, STOP = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
PER_DAY_AT_SCALE_1 = 12  # the simulator's s1a IW RAW rate


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def raw_json_write(root: Path, collection: str, items: list[dict]) -> None:
    for item in items:
        path = root / layout.item_key(collection, item["id"], layout.item_datetime(item))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(item, option=orjson.OPT_INDENT_2))


def pystac_catalog(collection_dict: dict, items: list[dict], keep_via: bool = True
                   ) -> pystac.Catalog:
    root = pystac.Catalog(id="rspy-batch", description="benchmark root")
    collection = pystac.Collection.from_dict(collection_dict)
    collection.clear_links()
    root.add_child(collection)
    days: dict[str, pystac.Catalog] = {}
    by_day = defaultdict(list)
    for d in items:
        y, m, dd = layout.day_parts(layout.item_datetime(d))
        by_day[f"{y}-{m}-{dd}"].append(d)
    for day, day_items in sorted(by_day.items()):
        cat = pystac.Catalog(id=f"{collection.id}-{day}", description=day)
        collection.add_child(cat)
        days[day] = cat
        for d in day_items:
            clean = {**d, "links": [lk for lk in d["links"] if lk["rel"] == "via" and keep_via]}
            clean.pop("collection", None)
            cat.add_item(pystac.Item.from_dict(clean))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--via-subset", type=int, default=5000,
                        help="items for the pystac baseline that keeps the via links")
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args()
    scale = args.products / (PER_DAY_AT_SCALE_1 * 31)
    work = Path(tempfile.mkdtemp(prefix="rspy-bench-", dir=args.dir))
    print(f"work dir {work}; simulator s1a scale {scale:.1f}")
    config = SimConfig(seed=1, start=START, stop=STOP, scale=0.0, station_scale={"s1a": scale},
                       product_bytes=256, eopf_scale=0.0)
    try:
        with Simulator(config) as sim:
            sim.write_stations_file(work / "stations.yaml")
            sim.write_secrets_file(work / "secrets.env")
            os.environ["RSPY_SECRETS_FILE"] = str(work / "secrets.env")
            stations = load_stations(work / "stations.yaml")
            template = dataclasses.replace(get_template("prip-s1a-iw-raw"), window_days=31)
            client = ODataClient(stations["s1a"])

            t_page, entities = timed(lambda: list(search(client, template, START, STOP)))
            n = len(entities)
            print(f"station paging (warm-up, builds the simulator's data): {n} products "
                  f"in {t_page:.1f} s")
            t_page, entities = timed(lambda: list(search(client, template, START, STOP)))
            mapper = MAPPERS["prip"]
            t_map, items = timed(lambda: [mapper(e, station_id="s1a", station_url=stations[
                "s1a"].url) for e in entities])

            t_ingest, record = timed(ingest_window, template, START, STOP,
                                     store=LocalStore(work / "ingest"), stations=stations)
            assert record.counts["added"] == n, record.counts
            t_reingest, record = timed(ingest_window, template, START, STOP,
                                       store=LocalStore(work / "ingest"), stations=stations)
            assert record.counts["unchanged"] == n, record.counts

        writer = CatalogWriter(LocalStore(work / "writer"))
        writer.ensure_collection(template.collection_dict())

        def write_all() -> None:
            for i in range(0, n, 500):
                writer.upsert_items(template.id, items[i:i + 500], merge=ingest_merge)

        t_writer, _ = timed(write_all)
        placed = [writer._place(template.id, it)[1] for it in items]
        t_raw, _ = timed(raw_json_write, work / "raw", template.id, placed)
        root = pystac_catalog(template.collection_dict(), placed, keep_via=False)
        t_norm, _ = timed(root.normalize_hrefs, str(work / "pystac"))
        t_save, _ = timed(root.save, pystac.CatalogType.SELF_CONTAINED)
        t_pystac = t_norm + t_save
        # The items as we write them carry a `via` link; pystac 1.15 resolves every
        # non-hierarchical link by walking the whole tree (Link.to_dict →
        # target_in_hierarchy), so that save is quadratic in the catalog size. It is
        # measured on a subset; at the full size it would run for hours.
        n_via = min(n, args.via_subset)
        root = pystac_catalog(template.collection_dict(), placed[:n_via], keep_via=True)
        t_via, _ = timed(lambda: (root.normalize_hrefs(str(work / "pystac-via")),
                                  root.save(pystac.CatalogType.SELF_CONTAINED)))
        sub_writer = CatalogWriter(LocalStore(work / "writer-sub"))
        sub_writer.ensure_collection(template.collection_dict())
        t_writer_sub, _ = timed(sub_writer.upsert_items, template.id, items[:n_via],
                                merge=ingest_merge)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def rate(t: float) -> str:
        return f"{n / t:>10,.0f} items/s  ({t:6.1f} s)"

    days = len({layout.day_parts(layout.item_datetime(i)) for i in items})
    print(f"\n{n:,} Sentinel-2 L1C products, one collection, {days} day catalogs")
    print(f"  station paging over HTTP (warm)          {rate(t_page)}")
    print(f"  mapping entities → items                 {rate(t_map)}")
    print(f"  rspy-batch ingest (page+map+write)       {rate(t_ingest)}")
    print(f"  rspy-batch re-ingest, nothing changed    {rate(t_reingest)}")
    print(f"  CatalogWriter alone (mapped items)       {rate(t_writer)}")
    print(f"  baseline: raw JSON files                 {rate(t_raw)}")
    print(f"  baseline: pystac normalize_hrefs + save  {rate(t_pystac)}"
          f"   [normalize {t_norm:.1f} s, save {t_save:.1f} s; items without via link]")
    print(f"  baseline: pystac, items as written       {n_via / t_via:>10,.0f} items/s  "
          f"({t_via:6.1f} s for the first {n_via:,} items, with via link)")
    print("\nratios (items/s, higher is better for the first named)")
    print(f"  CatalogWriter / raw JSON      {t_raw / t_writer:5.2f}")
    print(f"  CatalogWriter / pystac        {t_pystac / t_writer:5.2f}")
    print(f"  full ingest   / raw JSON      {t_raw / t_ingest:5.2f}")
    print(f"  full ingest   / pystac        {t_pystac / t_ingest:5.2f}")
    print(f"  CatalogWriter / pystac as written, {n_via:,} items: "
          f"{t_via / t_writer_sub:5.1f}")


if __name__ == "__main__":
    main()
