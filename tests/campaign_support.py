"""Helpers for the campaign tests: a campaign file, and what a finished campaign must hold
(worked out from the simulator's ground truth, not from the code under test)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
import zarr
from e2e import expected

from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.reader import iter_items
from rspy_batch.catalog.storage import Store, open_store
from rspy_batch.catalog.walk import walk_items
from rspy_batch.templates import get_template
from rspy_batch.windows import parse_when

PLUGINS = Path(__file__).parent / "plugins"
PLUGINS_V2 = Path(__file__).parent / "plugins_v2"
INPUT = "auxip-s1a-aux-resorb"
STATION_ONLY = "auxip-s2b-aux-ecmwfd"
START, STOP = "2026-01-05", "2026-01-19"      # two weekly windows
ONE_WEEK = "2026-01-12"                        # one window per collection
OWNER = "ops"


def plugin_env(plugins: Path = PLUGINS) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(plugins),
                                                        os.environ.get("PYTHONPATH")]))}


def write_campaign(path: Path, *, catalog: str, staging: str, stations: Path,
                   publish_to: str | None = None, version: str = "0.1.0",
                   options: dict[str, Any] | None = None, name: str = "toy-campaign",
                   stop: str = STOP) -> Path:
    doc: dict[str, Any] = {
        "name": name, "start": START, "stop": stop, "catalog": catalog, "staging": staging,
        "stations": str(stations), "collections": [STATION_ONLY],
        "processing": [{"processor": "toy-bytes", "version": version, "input": INPUT,
                        "output": f"{INPUT}-toy"}],
        "options": {"transfers": 2, "lease_ttl": 30, **(options or {})},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    if publish_to:
        config = path.parent / "publish.yaml"
        config.write_text(yaml.safe_dump({
            "default_owner": OWNER, "collections": {"auxip-*": {"owner": OWNER}},
            "assets": [{"from": staging, "url": "http://127.0.0.1:9/data/"}]}))
        doc["publish"] = {"to": publish_to, "public_url": "http://127.0.0.1:9/",
                          "config": config.name}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def expected_items(sim: Any, collection: str, stop: str = STOP) -> set[str]:
    tpl = get_template(collection)
    items, _rejected = expected(sim.truth(tpl.station), tpl, parse_when(START),
                                parse_when(stop))
    return items


def reachable_ids(store: Store, collection: str) -> list[str]:
    """Item ids reachable from the collection by links (a list: duplicates would show)."""
    return [item["id"] for item in iter_items(store, collection)]


def published_ids(root: str, collection_key: str) -> list[str]:
    return [item["id"] for _key, item in walk_items(open_store(root), collection_key)]


#: Fields that say when something happened, which two runs of the same work differ in.
VOLATILE = {"created", "updated", "processing:datetime", "published", "expires",
            "rspy:staged", "rspy:staged_at", "rspy:ingested", "rspy:ingested_at"}


def normalise(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: normalise(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [normalise(v) for v in doc]
    if isinstance(doc, str) and "://" in doc:
        # Stores differ between runs only by their root; compare what is under it.
        return doc.split("/catalog/", 1)[-1].split("/staging/", 1)[-1]
    return doc


def catalog_view(store: Store) -> dict[str, Any]:
    """Every STAC document of a catalog (records and leases excluded), normalised."""
    return {key: normalise(loads(blob.data)) for key in sorted(store.list(""))
            if key.endswith(".json") and not key.startswith("_rspy")
            and (blob := store.read(key)) is not None}


def product_arrays(store: Store, collection: str) -> dict[str, bytes]:
    """Each product's histogram bytes, by item id (what the processor computed)."""
    out = {}
    for item in iter_items(store, collection):
        href = item["assets"]["product"]["href"]
        group = zarr.open_group(href.removeprefix("file://"), mode="r", zarr_format=2,
                                storage_options=_options(href))
        out[item["id"]] = group["measurements/histogram"][:].tobytes()
    return out


def _options(href: str) -> dict[str, Any] | None:
    if not href.startswith("s3://"):
        return None
    return {"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}}


def duplicates(ids: list[str]) -> list[str]:
    return [i for i, n in Counter(ids).items() if n > 1]
