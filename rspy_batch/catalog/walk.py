"""Every item below a STAC document, found by following links (any layout).

:mod:`rspy_batch.catalog.reader` knows the ingest layout (collection → year → month → day);
this walker knows none: it follows ``child`` and ``item`` links from whatever document it
is given (a root, an owner catalog, a collection, a sub-catalog), so it reads a published
catalog exactly as STAC Browser or any static-catalog client would. It is the reference a
search index is checked against.

- Relative hrefs are resolved with :func:`rspy_batch.catalog.layout.resolve_href`; absolute
  hrefs (``https://…``, ``/…``) point outside the store and are ignored, as are relative ones
  that climb above the store's root.
- A link to a missing document is skipped (logged at debug): a reader of a static catalog
  cannot do better, and a half-published tree must not stop a walk.
- Each document is read once even when several links reach it.
- Reads run on threads (each waits on S3 latency); the output order is deterministic all
  the same: items come sorted by key.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any
from urllib.parse import urlparse

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import Store

log = logging.getLogger(__name__)

Doc = dict[str, Any]

READ_THREADS = 16
# Items are read in chunks so that a walk of a large collection streams instead of
# holding every item at once.
ITEM_CHUNK = 512


def walk_items(store: Store, start_key: str, *, threads: int = READ_THREADS
               ) -> Iterator[tuple[str, Doc]]:
    """``(key, item)`` for every item reachable from ``start_key`` by child/item links,
    each once, sorted by key."""
    item_keys = sorted(_item_keys(store, start_key, threads))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for chunk in _chunks(item_keys, ITEM_CHUNK):
            for key, doc in zip(chunk, pool.map(lambda k: _read(store, k), chunk), strict=True):
                if doc is not None:
                    yield key, doc


def _item_keys(store: Store, start_key: str, threads: int) -> set[str]:
    """Breadth-first over catalogs: one level of documents is read in parallel."""
    seen = {start_key}
    items: set[str] = set()
    level = [start_key]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        while level:
            docs = list(pool.map(lambda k: _read(store, k), level))
            next_level: list[str] = []
            for key, doc in zip(level, docs, strict=True):
                if doc is None:
                    continue
                for rel, target in link_targets(key, doc):
                    if rel == "item":
                        items.add(target)
                    elif target not in seen:
                        seen.add(target)
                        next_level.append(target)
            level = sorted(next_level)
    return items


def link_targets(key: str, doc: Doc) -> list[tuple[str, str]]:
    """``(rel, key)`` of the ``child`` and ``item`` links of the document at ``key`` that
    stay inside the store."""
    out = []
    for link in doc.get("links", []):
        rel, href = link.get("rel"), link.get("href")
        if rel not in ("child", "item") or not isinstance(href, str):
            continue
        if _is_absolute(href):
            continue
        target = layout.resolve_href(key, href)
        if target == ".." or target.startswith("../") or target.startswith("/"):
            log.debug("%s: link %r leaves the store, ignored", key, href)
            continue
        out.append((rel, target))
    return out


def _is_absolute(href: str) -> bool:
    return href.startswith("/") or bool(urlparse(href).scheme)


def _read(store: Store, key: str) -> Doc | None:
    try:
        blob = store.read(key)
    except (ValueError, IsADirectoryError):  # an href naming no object (``./``, ``a//b``)
        blob = None
    if blob is None:
        log.debug("linked document %s is missing, skipped", key)
        return None
    return loads(blob.data)


def _chunks(keys: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(keys)
    while chunk := list(islice(it, size)):
        yield chunk
