"""The one way anything is written into the catalog: incremental, ordered, race-safe.

Every stage (ingest, stage, process, publish, campaigns on several machines) updates the
catalog through :class:`CatalogWriter`. Three rules make it safe:

1. **Bottom-up order.** An item file is written before the day catalog links it, a day
   catalog before its month links it, and so on up to the root. A crash at any point
   leaves at worst an unlinked file, never a link to a missing one; a re-run writes the
   same objects again and adds the missing links.
2. **Compare-and-swap.** Each object is read, changed in memory and written back only if
   nobody changed it in between (:meth:`Store.put` with ``expect``); a lost race re-reads
   and re-applies the change, so concurrent writers never lose each other's updates.
3. **Touch only what changes.** An object whose new content equals what is stored is not
   written; adding items writes those items and their id index entries, their day
   catalogs and, when they gain a child or the extent grows, the month, year and
   collection above them. Nothing else.

An item is filed under the day of its datetime, so an update that moves the datetime to
another day files it elsewhere. The id index (``_rspy/ids/<collection>/<id>.json``) says
where each item is, and is written *before* the item: it names the new key and keeps every
earlier key as ``stale`` until that copy is unlinked and deleted. A crash at any point
therefore leaves the next run (of any datetime) a list of every copy it has to retire,
and an item is never unreachable: the new copy is linked before the old one is unlinked.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import dumps, loads
from rspy_batch.catalog.storage import Store
from rspy_batch.errors import ConflictError

log = logging.getLogger(__name__)

STAC_VERSION = "1.1.0"
JSON = "application/json"
GEOJSON = "application/geo+json"
GLOBAL_BBOX = [-180.0, -90.0, 180.0, 90.0]
STRUCTURAL_RELS = frozenset({"root", "parent", "collection", "self"})

Doc = dict[str, Any]
Merge = Callable[[Doc | None, Doc], Doc]


@dataclass
class UpsertResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def replace_merge(existing: Doc | None, new: Doc) -> Doc:
    """Merge policy that keeps nothing of the stored item."""
    return new


class CatalogWriter:
    """Writes items, collections and the sub-catalogs between them into a :class:`Store`."""

    def __init__(self, store: Store, *, title: str = "rspy-batch catalog",
                 description: str = "Copernicus station and processing products",
                 workers: int | None = None, cas_attempts: int = 50) -> None:
        self.store = store
        self.title = title
        self.description = description
        self.workers = workers or store.write_concurrency
        self.cas_attempts = cas_attempts

    # -- generic read-modify-write ---------------------------------------------------

    def update(self, key: str, change: Callable[[Doc | None], Doc | None]) -> Doc | None:
        """Apply ``change`` to the stored object under compare-and-swap.

        ``change`` gets a private copy of the current object (None when absent) and
        returns the new object, or None / an equal object to leave it as it is. It may be
        called several times when other writers race us, so it must be a pure function
        of its argument.
        """
        for attempt in range(self.cas_attempts):
            blob = self.store.read(key)
            current = loads(blob.data) if blob else None
            # A second parse is the cheapest private copy (deepcopy is several times slower).
            new = change(loads(blob.data) if blob else None)
            if new is None or new == current:
                return current
            try:
                self.store.put(key, dumps(new), expect=blob.version if blob else None)
                return new
            except ConflictError:
                # Back off a little, with jitter, so racing writers interleave.
                time.sleep(min(0.5, 0.005 * 2 ** min(attempt, 7)) * random.random())
        raise ConflictError(f"{key}: gave up after {self.cas_attempts} conflicting writes")

    # -- root and collections --------------------------------------------------------

    def ensure_root(self) -> None:
        def change(root: Doc | None) -> Doc:
            if root is not None:
                return root
            return {
                "type": "Catalog", "stac_version": STAC_VERSION, "id": "rspy-batch",
                "title": self.title, "description": self.description,
                "links": [make_link("root", "./catalog.json", self.title)],
            }

        self.update(layout.ROOT, change)

    def ensure_collection(self, collection: Doc) -> None:
        """Create the collection (from its template dict) if absent and link it from the root.

        An existing collection keeps its extent and children; its descriptive fields are
        refreshed from the template so that template edits reach the catalog.
        """
        cid = collection["id"]
        reason = layout.unsafe_id_reason(cid)
        if reason:
            raise ValueError(f"collection id: {reason}")
        key = layout.collection_key(cid)
        self.ensure_root()

        def change(current: Doc | None) -> Doc:
            doc = copy.deepcopy(collection)
            doc.setdefault("stac_version", STAC_VERSION)
            doc["type"] = "Collection"
            if current is None:
                doc["extent"] = {"spatial": {"bbox": [list(GLOBAL_BBOX)]},
                                 "temporal": {"interval": [[None, None]]}}
                doc["links"] = [
                    make_link("root", layout.relative_href(key, layout.ROOT), self.title),
                    make_link("parent", layout.relative_href(key, layout.ROOT), self.title),
                ] + [lk for lk in collection.get("links", []) if lk["rel"] not in STRUCTURAL_RELS]
                return doc
            # Keep what items and later stages built up; take descriptive fields from
            # the template so that template edits reach the catalog.
            doc["extent"] = current["extent"]
            own = [lk for lk in collection.get("links", []) if lk["rel"] not in STRUCTURAL_RELS]
            doc["links"] = sorted_links(_dedupe_links(current.get("links", []) + own))
            for k, v in current.items():
                doc.setdefault(k, v)
            return doc

        self.update(key, change)
        self._ensure_child(layout.ROOT, key, collection.get("title") or cid)

    # -- items -----------------------------------------------------------------------

    def upsert_items(self, collection_id: str, items: Iterable[Doc],
                     merge: Merge = replace_merge) -> UpsertResult:
        """Add or update items of one collection; return which were added/updated/unchanged.

        The collection must exist (:meth:`ensure_collection`). ``merge(existing, new)``
        decides what an update keeps of the stored item (e.g. ingest keeps staged hrefs);
        for an item that moved to another day, ``existing`` is its copy on the old day.
        """
        placed = [self._place(collection_id, item) for item in items]
        result = UpsertResult()
        if not placed:
            return result
        stale = self._map(lambda kv: self._claim(collection_id, *kv), placed)
        outcomes = self._map(lambda args: self._write_item(*args, merge),
                             [(key, item, old) for (key, item), old in zip(placed, stale,
                                                                          strict=True)])
        for (_key, item), outcome in zip(placed, outcomes, strict=True):
            getattr(result, outcome).append(item["id"])
        self._link_items(collection_id, placed)
        moved = [(key, item, old) for (key, item), old in zip(placed, stale, strict=True) if old]
        if moved:
            self._retire(collection_id, moved)
        return result

    def _map(self, fn: Callable[[Any], Any], args: list[Any]) -> list[Any]:
        if self.workers > 1 and len(args) > 1:
            # Threads pay off where each call waits on the network (S3).
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                return list(pool.map(fn, args))
        return [fn(a) for a in args]

    def _place(self, collection_id: str, item: Doc) -> tuple[str, Doc]:
        reason = layout.unsafe_id_reason(item["id"])
        if reason:
            raise ValueError(f"item id: {reason}")
        key = layout.item_key(collection_id, item["id"], layout.item_datetime(item))
        y, m, d = key.split("/")[1:4]
        # A JSON round trip makes the in-memory item compare equal to its stored form
        # (tuples become lists), so an unchanged item is recognised and not rewritten.
        doc = loads(dumps(item))
        doc["collection"] = collection_id
        own = [lk for lk in item.get("links", []) if lk["rel"] not in STRUCTURAL_RELS]
        doc["links"] = [
            make_link("root", layout.relative_href(key, layout.ROOT), self.title),
            make_link("parent", layout.relative_href(key, layout.day_key(collection_id, y, m, d)),
                  f"{collection_id} {y}-{m}-{d}"),
            make_link("collection", layout.relative_href(key, layout.collection_key(collection_id)),
                  collection_id),
            *own,
        ]
        return key, doc

    def _claim(self, cid: str, key: str, item: Doc) -> list[str]:
        """Point the id index at ``key`` before the item is written there; return the keys
        of the item's earlier copies, which are to be retired once it is linked at ``key``.
        """
        def change(current: Doc | None) -> Doc:
            if current is None:
                return {"key": key}
            old = [k for k in [*current.get("stale", []), current.get("key")]
                   if _is_item_key(cid, item["id"], k) and k != key]
            return {"key": key, "stale": list(dict.fromkeys(old))} if old else {"key": key}

        entry = self.update(layout.id_key(cid, item["id"]), change) or {}
        return list(entry.get("stale", []))

    def _write_item(self, key: str, item: Doc, stale: list[str], merge: Merge) -> str:
        outcome = "unchanged"
        # What the item had where it was filed last: the base of an update that moves it.
        before = next((doc for k in reversed(stale)
                       if (doc := _read_doc(self.store, k)) is not None), None)

        def change(current: Doc | None) -> Doc:
            nonlocal outcome
            base = current if current is not None else before
            new = merge(base, item)
            outcome = ("added" if base is None else
                       "unchanged" if new == current else "updated")
            return new

        self.update(key, change)
        return outcome

    def _retire(self, cid: str, moved: list[tuple[str, Doc, list[str]]]) -> None:
        """Unlink and delete the earlier copies of items now linked at their new key, then
        clear them from the id index. Each step is idempotent, so a re-run after a crash
        anywhere here finishes the job."""
        by_day: dict[str, set[str]] = defaultdict(set)
        for _key, _item, stale in moved:
            for old in stale:
                by_day[_day_of(old)].add(old)
        for day, olds in sorted(by_day.items()):
            self._unlink_items(day, olds)
        self._map(self.store.delete, sorted({old for olds in by_day.values() for old in olds}))

        def settle(args: tuple[str, Doc, list[str]]) -> None:
            key, item, stale = args

            def change(current: Doc | None) -> Doc | None:
                if current is None or current.get("key") != key:
                    return None  # another writer moved it on; its run retires the rest
                left = [k for k in current.get("stale", []) if k not in stale]
                return {"key": key, "stale": left} if left else {"key": key}

            self.update(layout.id_key(cid, item["id"]), change)

        self._map(settle, moved)

    def _unlink_items(self, day: str, keys: set[str]) -> None:
        def change(current: Doc | None) -> Doc | None:
            if current is None:
                return None
            links = [lk for lk in current["links"] if not (
                lk["rel"] == "item" and layout.resolve_href(day, lk["href"]) in keys)]
            return {**current, "links": links}

        self.update(day, change)

    def _link_items(self, collection_id: str, placed: list[tuple[str, Doc]]) -> None:
        days: dict[tuple[str, str, str], list[tuple[str, Doc]]] = defaultdict(list)
        for key, item in placed:
            y, m, d = key.split("/")[1:4]
            days[(y, m, d)].append((key, item))
        months: dict[tuple[str, str], set[str]] = defaultdict(set)
        for (y, m, d), entries in sorted(days.items()):
            self._ensure_day(collection_id, y, m, d, entries)
            months[(y, m)].add(d)
        years: dict[str, set[str]] = defaultdict(set)
        for (y, m), ds in sorted(months.items()):
            mkey = layout.month_key(collection_id, y, m)
            self._ensure_subcatalog(collection_id, mkey, f"{y}-{m}",
                                    [(layout.day_key(collection_id, y, m, d), f"{y}-{m}-{d}")
                                     for d in sorted(ds)])
            years[y].add(m)
        for y, ms in sorted(years.items()):
            self._ensure_subcatalog(collection_id, layout.year_key(collection_id, y), y,
                                    [(layout.month_key(collection_id, y, m), f"{y}-{m}")
                                     for m in sorted(ms)])
        self._update_collection(collection_id, sorted(years), [item for _, item in placed])

    def _ensure_day(self, cid: str, y: str, m: str, d: str, entries: list[tuple[str, Doc]]) -> None:
        key = layout.day_key(cid, y, m, d)
        links = [make_link("item", layout.relative_href(key, ikey), item["id"], GEOJSON)
                 for ikey, item in entries]
        self._ensure_links(cid, key, f"{y}-{m}-{d}", links)

    def _ensure_subcatalog(self, cid: str, key: str, label: str,
                           children: list[tuple[str, str]]) -> None:
        links = [make_link("child", layout.relative_href(key, ckey), f"{cid} {title}")
                 for ckey, title in children]
        self._ensure_links(cid, key, label, links)

    def _ensure_links(self, cid: str, key: str, label: str, links: list[Doc]) -> None:
        parent_key = _parent_catalog_key(cid, key)

        def change(current: Doc | None) -> Doc:
            doc = current or {
                "type": "Catalog", "stac_version": STAC_VERSION,
                "id": f"{cid}-{label}", "title": f"{cid} {label}",
                "description": f"{cid} items dated {label}",
                "links": [
                    make_link("root", layout.relative_href(key, layout.ROOT), self.title),
                    make_link("parent", layout.relative_href(key, parent_key),
                          _catalog_title(cid, parent_key)),
                ],
            }
            have = {(lk["rel"], lk["href"]) for lk in doc["links"]}
            missing = [lk for lk in links if (lk["rel"], lk["href"]) not in have]
            if missing:
                doc["links"] = sorted_links(doc["links"] + missing)
            return doc

        self.update(key, change)

    def _ensure_child(self, parent_key: str, child_key: str, title: str) -> None:
        link = make_link("child", layout.relative_href(parent_key, child_key), title)

        def change(current: Doc | None) -> Doc | None:
            if current is None:
                raise ConflictError(f"{parent_key} vanished while linking {child_key}")
            if any(lk["rel"] == "child" and lk["href"] == link["href"] for lk in current["links"]):
                return current
            current["links"] = sorted_links(current["links"] + [link])
            return current

        self.update(parent_key, change)

    def _update_collection(self, cid: str, years: list[str], items: list[Doc]) -> None:
        key = layout.collection_key(cid)
        links = [make_link("child", layout.relative_href(key, layout.year_key(cid, y)),
                           f"{cid} {y}") for y in years]
        bbox, interval = batch_extent(items)

        def change(current: Doc | None) -> Doc:
            if current is None:
                raise ConflictError(f"collection {cid} does not exist; ensure_collection first")
            have = {(lk["rel"], lk["href"]) for lk in current["links"]}
            missing = [lk for lk in links if (lk["rel"], lk["href"]) not in have]
            if missing:
                current["links"] = sorted_links(current["links"] + missing)
            current["extent"] = merge_extent(current["extent"], bbox, interval)
            return current

        self.update(key, change)


# -- pure helpers --------------------------------------------------------------------

def make_link(rel: str, href: str, title: str | None, media_type: str = JSON) -> Doc:
    link: Doc = {"rel": rel, "href": href, "type": media_type}
    if title:
        link["title"] = title
    return link


_REL_ORDER = {"self": 0, "root": 1, "parent": 2, "collection": 3}


def sorted_links(links: list[Doc]) -> list[Doc]:
    """Structural links first, then the rest by rel and href: stable bytes on every write."""
    return sorted(links, key=lambda lk: (_REL_ORDER.get(lk["rel"], 9), lk["rel"], lk["href"]))


def _dedupe_links(links: list[Doc]) -> list[Doc]:
    seen: dict[tuple[str, str], Doc] = {}
    for lk in links:
        seen.setdefault((lk["rel"], lk["href"]), lk)
    return list(seen.values())


def _is_item_key(cid: str, item_id: str, key: object) -> bool:
    """Whether ``key`` (read from the id index, so not trusted) is where ``item_id`` of
    ``cid`` can be filed: only such keys are ever deleted."""
    if not isinstance(key, str) or layout.item_day(key) is None:
        return False
    parts = key.split("/")
    return parts[0] == cid and parts[4] == item_id and parts[5] == f"{item_id}.json"


def _day_of(item_key: str) -> str:
    return item_key.rsplit("/", 2)[0] + "/catalog.json"


def _read_doc(store: Store, key: str) -> Doc | None:
    blob = store.read(key)
    return loads(blob.data) if blob else None


def _catalog_title(cid: str, key: str) -> str:
    parts = key.split("/")[1:-1]  # the YYYY / MM / DD segments, if any
    return f"{cid} {'-'.join(parts)}" if parts and parts[0] != "collection.json" else cid


def _parent_catalog_key(cid: str, key: str) -> str:
    parts = key.split("/")  # cid/YYYY[/MM[/DD]]/catalog.json
    if len(parts) == 3:
        return layout.collection_key(cid)
    return "/".join(parts[:-2] + ["catalog.json"])


def batch_extent(items: list[Doc]) -> tuple[list[float] | None, list[str | None]]:
    """Bounding box (None when no item has geometry) and time interval of ``items``."""
    boxes = [it["bbox"] for it in items if it.get("bbox")]
    bbox = None
    if boxes:
        bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes)]
    starts, ends = [], []
    for it in items:
        p = it["properties"]
        start = p.get("start_datetime") or p.get("datetime")
        end = p.get("end_datetime") or p.get("datetime") or start
        if start:
            starts.append(layout.parse_datetime(start))
        if end:
            ends.append(layout.parse_datetime(end))
    interval: list[str | None] = [
        layout.format_datetime(min(starts)) if starts else None,
        layout.format_datetime(max(ends)) if ends else None,
    ]
    return bbox, interval


def merge_extent(extent: Doc, bbox: list[float] | None, interval: list[str | None]) -> Doc:
    """Grow a collection extent to cover a batch. A collection without items yet has the
    interval ``[null, null]``; its placeholder global bbox is then replaced, not grown,
    and it stays global when the items have no geometry (CADIP sessions, AUX files)."""
    extent = copy.deepcopy(extent)
    old_interval = extent["temporal"]["interval"][0]
    empty = old_interval == [None, None]
    old_bbox = extent["spatial"]["bbox"][0]
    if bbox is not None:
        if empty:
            new_bbox = list(bbox)
        else:
            new_bbox = [min(old_bbox[0], bbox[0]), min(old_bbox[1], bbox[1]),
                        max(old_bbox[2], bbox[2]), max(old_bbox[3], bbox[3])]
        extent["spatial"]["bbox"][0] = new_bbox
    start, end = interval
    if empty:
        extent["temporal"]["interval"][0] = [start, end]
    else:
        s0, e0 = old_interval
        if start and (s0 is None or layout.parse_datetime(start) < layout.parse_datetime(s0)):
            s0 = start
        if end and (e0 is None or layout.parse_datetime(end) > layout.parse_datetime(e0)):
            e0 = end
        extent["temporal"]["interval"][0] = [s0, e0]
    return extent

