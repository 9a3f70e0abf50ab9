"""Ingest: station metadata for one collection and time window → items in the catalog.

The flow for one window (a Luigi task runs exactly this):

1. search the collection's station with the template's query, paging;
2. map each entity to a STAC item; an entity that cannot be mapped (missing field,
   unsafe name, bad checksum text) is recorded as rejected with its reason and skipped;
3. write the items in batches through :class:`CatalogWriter` (items first, then the day,
   month, year and collection above them);
4. write the window's run record last; its ``complete`` status is what makes the window
   done. A station failure (after the client's retries) marks the window failed.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.catalog.records import COMPLETE, Rejection, RunRecord, now, write_record
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.writer import STRUCTURAL_RELS, CatalogWriter
from rspy_batch.errors import ConfigError, EntityRejected
from rspy_batch.mapping import MAPPERS
from rspy_batch.mapping.common import entity_label, iso
from rspy_batch.redact import redact
from rspy_batch.stations import auxip, cadip, lta, prip
from rspy_batch.stations.client import ODataClient
from rspy_batch.stations.config import StationConfig
from rspy_batch.templates import CollectionTemplate

log = logging.getLogger(__name__)

STAGE = "ingest"
BATCH = 500

Progress = Callable[[int, int], None]  # (entities seen, items written)


def ingest_window(template: CollectionTemplate, start: datetime, stop: datetime, *,
                  store: Store, stations: dict[str, StationConfig], workers: int | None = None,
                  client: ODataClient | None = None, progress: Progress | None = None
                  ) -> RunRecord:
    """Ingest ``[start, stop)`` of one collection; return the window's run record.

    Raises after recording the failure when the station cannot be searched, so that the
    Luigi task fails and a later run retries the window.
    """
    record = RunRecord(stage=STAGE, collection=template.id, start=iso(start), stop=iso(stop),
                       started=now())
    try:
        station = station_for(template, stations)
        client = client or ODataClient(station)
        writer = CatalogWriter(store, workers=workers)
        writer.ensure_collection(template.collection_dict())
        _ingest(template, station, client, writer, start, stop, record, progress)
        record.status = COMPLETE
    except Exception as exc:
        record.error = redact(f"{type(exc).__name__}: {exc}")
        log.error("ingest %s %s..%s failed: %s", template.id, record.start, record.stop,
                  record.error)
        raise
    finally:
        record.finished = now()
        write_record(store, record)
    log.info("ingest %s %s..%s: %s", template.id, record.start, record.stop, record.counts)
    return record


def _ingest(template: CollectionTemplate, station: StationConfig, client: ODataClient,
            writer: CatalogWriter, start: datetime, stop: datetime, record: RunRecord,
            progress: Progress | None) -> None:
    mapper = MAPPERS[template.service]
    counts = {"entities": 0, "added": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    names: dict[str, str] = {}  # item id → entity label, to catch two entities, one item
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        result = writer.upsert_items(template.id, batch, merge=ingest_merge)
        record.items.extend(layout.item_key(template.id, it["id"], layout.item_datetime(it))
                            for it in batch)
        counts["added"] += len(result.added)
        counts["updated"] += len(result.updated)
        counts["unchanged"] += len(result.unchanged)
        batch.clear()
        written = counts["added"] + counts["updated"] + counts["unchanged"]
        log.info("ingest %s %s..%s: %d entities, %d items written, %d rejected", template.id,
                 record.start[:10], record.stop[:10], counts["entities"], written,
                 counts["rejected"])
        if progress:
            progress(counts["entities"], written)

    for entity in search(client, template, start, stop):
        counts["entities"] += 1
        try:
            if not isinstance(entity, dict):
                raise EntityRejected("<malformed entity>", f"not a JSON object: {entity!r:.60}")
            item = mapper(entity, station_id=station.id, station_url=station.url)
            other = names.setdefault(item["id"], entity_label(entity))
            if other != entity_label(entity):
                raise EntityRejected(entity_label(entity),
                                     f"maps to item {item['id']!r} like {other!r}")
        except EntityRejected as rejected:
            counts["rejected"] += 1
            record.rejected.append(Rejection(rejected.entity_id, rejected.reason))
            log.warning("rejected %s: %s", rejected.entity_id, rejected.reason)
            continue
        batch.append(item)
        if len(batch) >= BATCH:
            flush()
    if batch or progress:
        flush()
    record.items.sort()
    record.counts = counts


def station_for(template: CollectionTemplate, stations: dict[str, StationConfig]
                ) -> StationConfig:
    try:
        station = stations[template.station]
    except KeyError:
        raise ConfigError(f"collection {template.id!r} needs station {template.station!r}, "
                          f"which the stations file does not define") from None
    if station.service != template.service:
        raise ConfigError(f"collection {template.id!r} expects a {template.service} station "
                          f"but {station.id!r} is {station.service}")
    return station


def search(client: ODataClient, template: CollectionTemplate, start: datetime, stop: datetime
           ) -> Iterator[dict[str, Any]]:
    """The station entities of ``template`` in ``[start, stop)`` of its time field."""
    window = {"start": start, "stop": stop, "time_field": template.time_field}
    if template.service == "cadip":
        return cadip.search_sessions(client, fields=template.fields, **window)
    if template.service == "auxip":
        return auxip.search_products(client, fields=template.fields,
                                     attributes=template.attributes, **window)
    if template.service == "prip":
        return prip.search_products(client, fields=template.fields,
                                    attributes=template.attributes, **window)
    return lta.search_products(client, fields=template.fields, **window)


def ingest_merge(existing: dict[str, Any] | None, fresh: dict[str, Any]) -> dict[str, Any]:
    """Station fields win; what later stages added to the stored item is kept.

    Ingest owns the fields its mapping produces. Staging replaces asset hrefs and adds
    ``alternate`` hrefs, processing adds links; re-ingesting must not undo that. A staged
    asset keeps its href and the stage's fields, unless the station now serves another
    file (size or checksum changed): then it reverts to the station's and is re-staged.
    """
    from rspy_batch.staging.state import is_staged_asset, unstage_if_changed

    if existing is None or existing == fresh:
        return fresh  # new, or a re-run over an unchanged entity: nothing to merge
    merged = copy.deepcopy(fresh)
    props = merged["properties"]
    for key, value in existing.get("properties", {}).items():
        props.setdefault(key, value)
    merged["stac_extensions"] = fresh.get("stac_extensions", []) + [
        uri for uri in existing.get("stac_extensions", [])
        if uri not in fresh.get("stac_extensions", [])]
    for key, asset in merged["assets"].items():
        old = existing.get("assets", {}).get(key)
        if old and is_staged_asset(old) and not unstage_if_changed(old, asset):
            merged["assets"][key] = {**asset, **old}
    for key, old in existing.get("assets", {}).items():
        if key not in merged["assets"] and is_staged_asset(old):
            merged["assets"][key] = old  # gone from the station, but we hold a copy
    fresh_links = {(lk["rel"], lk["href"]) for lk in merged.get("links", [])}
    merged["links"] = merged.get("links", []) + [
        lk for lk in existing.get("links", [])
        if lk["rel"] not in STRUCTURAL_RELS and (lk["rel"], lk["href"]) not in fresh_links]
    return merged
