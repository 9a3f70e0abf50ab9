"""Reading the catalog back: items of a collection in a time window, and whole-tree walks.

Readers follow links from the top (collection → year → month → day → item), never list
the store, so a file a crashed writer left unlinked is invisible to them, as it is to
STAC Browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import Store

Doc = dict


def read_json(store: Store, key: str) -> Doc | None:
    blob = store.read(key)
    return loads(blob.data) if blob else None


def links(doc: Doc, rel: str) -> list[str]:
    return [lk["href"] for lk in doc.get("links", []) if lk["rel"] == rel]


def collection_ids(store: Store) -> list[str]:
    root = read_json(store, layout.ROOT)
    if root is None:
        return []
    return sorted(layout.resolve_href(layout.ROOT, h).split("/")[0] for h in links(root, "child"))


def day_keys(store: Store, collection_id: str, start: datetime | None = None,
             stop: datetime | None = None) -> Iterator[str]:
    """Keys of the day catalogs of a collection that overlap ``[start, stop)``."""
    coll = read_json(store, layout.collection_key(collection_id))
    if coll is None:
        return
    first = start.date() if start else None
    last = (stop - timedelta(microseconds=1)).date() if stop else None
    for ykey in _children(store, layout.collection_key(collection_id), coll):
        year = int(ykey.split("/")[1])
        if (first and year < first.year) or (last and year > last.year):
            continue
        for mkey in _children(store, ykey):
            month = (year, int(mkey.split("/")[2]))
            if (first and month < (first.year, first.month)) or (
                    last and month > (last.year, last.month)):
                continue
            for dkey in _children(store, mkey):
                day = datetime(year, month[1], int(dkey.split("/")[3])).date()
                if (first and day < first) or (last and day > last):
                    continue
                yield dkey


def _children(store: Store, key: str, doc: Doc | None = None) -> list[str]:
    doc = doc if doc is not None else read_json(store, key)
    if doc is None:
        return []
    return sorted(layout.resolve_href(key, h) for h in links(doc, "child"))


def item_keys(store: Store, collection_id: str, start: datetime | None = None,
              stop: datetime | None = None) -> Iterator[str]:
    for dkey in day_keys(store, collection_id, start, stop):
        doc = read_json(store, dkey) or {}
        for href in sorted(links(doc, "item")):
            yield layout.resolve_href(dkey, href)


def iter_items(store: Store, collection_id: str, start: datetime | None = None,
               stop: datetime | None = None) -> Iterator[Doc]:
    """Items of a collection placed in ``[start, stop)`` (by their datetime)."""
    for key in item_keys(store, collection_id, start, stop):
        item = read_json(store, key)
        if item is None:
            continue
        if start or stop:
            dt = layout.item_datetime(item)
            if (start and dt < start) or (stop and dt >= stop):
                continue
        yield item
