"""Publish: the working catalog's chosen collections, made public, into a destination store.

Per collection (one run record each, ``_rspy/runs/publish/<collection>/<window>.json`` in the
working catalog), in the order a reader may follow links:

1. items of the window, made public (:mod:`.documents`, :mod:`.assets`), checked by the
   leak guard, their copies (thumbnails) written first, then the item, and only when its
   published bytes would change (digest in the month manifest);
2. items that left the window's days or moved to another month are withdrawn (see 6);
3. day, month and year catalogs regenerated from the months' entries, linking exactly the
   published items, then the month manifests (compare-and-swap, merged with a concurrent
   publisher's, whose items are then linked too): a withdrawn item is unlinked before
   its manifest forgets it;
4. the stac-geoparquet index of each month whose items changed;
5. the collection (extent and summaries of the published items), then the version links
   of the collections of its version series (``latest-version``, ``predecessor-version``,
   ``successor-version``), its own included, rewritten to where each sibling is published
   and readable by the same readers, or dropped: whichever of two versions is published
   last links both ways;
6. the sweep: files of the rewritten months that nothing links any more (withdrawn items'
   folders, emptied day, month and year catalogs) are deleted.

Then the owner catalogs and the root, so a collection appears there only once it is whole.
A crash anywhere leaves at worst unlinked files; a re-run rewrites what is missing and
converges to the same bytes. Station collections are published before processed ones, so
a ``derived_from`` link is written only to an input item that is already there.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from rspy_batch.catalog import layout, reader
from rspy_batch.catalog.jsonio import dumps
from rspy_batch.catalog.lease import hold
from rspy_batch.catalog.records import RunRecord, now, recording
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.versions import VERSION_RELS, with_version_links
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.errors import RspyError
from rspy_batch.mapping.common import iso
from rspy_batch.orchestration.leases import publish_lease
from rspy_batch.publish import documents, paths
from rspy_batch.publish.assets import Copy, plan_assets
from rspy_batch.publish.config import RESERVED_NAMES, Placement, PublishConfig
from rspy_batch.publish.guard import Needle, find_leaks
from rspy_batch.publish.manifest import (
    Month,
    known_prefixes,
    load_months,
    mark_sweep,
    months_to_sweep,
    save_month,
)

log = logging.getLogger(__name__)

STAGE = "publish"
#: The record window of a publish over all time (no --start/--stop).
ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
PRESIGN_MARK = "#presign="
DOC_CACHE_ITEMS = 100_000
Doc = dict[str, Any]
Progress = Callable[[str, int, int], None]


class PublishError(RspyError):
    """A collection could not be published; other collections go on."""


@dataclass(frozen=True)
class Target:
    """One collection to publish and where it goes."""

    collection_id: str
    owner: str
    public: bool
    processed: bool

    @property
    def prefix(self) -> str:
        return paths.collection_prefix(self.owner, self.collection_id, self.public)

    @property
    def root_key(self) -> str:
        return paths.root_key(self.owner, self.public)


@dataclass
class Publication:
    """Everything one publish run needs; built by the CLI or a Luigi task."""

    source: Store
    dest: Store
    public_url: str
    config: PublishConfig
    needles: list[Needle]
    presigner: Callable[[str, int], str]
    copier: Callable[[str], Iterator[tuple[str, bytes]]]
    """``copier(url)`` yields ``(relative path, bytes)`` of a file ("" path) or a tree."""
    lease_ttl: float = 300.0
    """Seconds a dead publisher keeps its collections' leases."""


@dataclass
class CollectionResult:
    collection_id: str
    record: RunRecord
    counts: dict[str, int] = field(default_factory=dict)


def plan_targets(source: Store, config: PublishConfig, only: list[str] | None = None
                 ) -> list[Target]:
    """The collections to publish, station collections first (see the module doc)."""
    processed = processed_collections(source)
    targets = []
    for cid in reader.collection_ids(source):
        if only and cid not in only:
            continue
        placement = config.placement(cid, processed=cid in processed)
        if placement is None:
            continue
        if cid in RESERVED_NAMES:
            raise PublishError(f"collection id {cid!r} is reserved in the published layout")
        targets.append(Target(cid, placement.owner, placement.public, cid in processed))
    if only:
        missing = sorted(set(only) - {t.collection_id for t in targets})
        if missing:
            raise PublishError(f"not publishable (not in the catalog, or neither processed "
                               f"nor chosen in the publish config): {', '.join(missing)}")
    return sorted(targets, key=lambda t: (t.processed, t.collection_id))


def processed_collections(source: Store) -> set[str]:
    """Output collections of processing, known from their run records."""
    prefix = f"{layout.RECORDS_PREFIX}/process"
    return {key[len(prefix) + 1:].split("/", 1)[0] for key in source.list(prefix)}


def publish(pub: Publication, targets: list[Target], *, start: datetime | None = None,
            stop: datetime | None = None, only: frozenset[str] | None = None,
            progress: Progress | None = None) -> list[CollectionResult]:
    """Publish ``targets`` over ``[start, stop)`` (all time when not given); with
    ``only``, just those working item keys among them (one window's items)."""
    results = []
    for target in targets:
        results.append(_publish_one(pub, targets, target, start, stop, only, progress))
    done = [r.collection_id for r in results if r.record.status == "complete"]
    _link_parents(pub, [t for t in targets if t.collection_id in done])
    return results


def pending(pub: Publication, targets: list[Target], target: Target, *,
            start: datetime | None = None, stop: datetime | None = None,
            only: frozenset[str] | None = None) -> int:
    """How many items of ``target`` over ``[start, stop)`` (and in ``only``) a publish
    would write (plus one when the collection is not linked yet): 0 means published and
    current."""
    record = RunRecord(STAGE, target.collection_id, "", "")
    return _CollectionRun(pub, targets, target, record, {}, None, only).pending(start, stop)


def _publish_one(pub: Publication, targets: list[Target], target: Target,
                 start: datetime | None, stop: datetime | None, only: frozenset[str] | None,
                 progress: Progress | None) -> CollectionResult:
    w0, w1 = (start or ALL_TIME[0]), (stop or ALL_TIME[1])
    record = RunRecord(STAGE, target.collection_id, iso(w0), iso(w1), started=now())
    counts = dict.fromkeys(("items", "published", "unchanged", "rejected", "hrefs_withheld",
                            "files_copied", "withdrawn", "files_deleted"), 0)
    result = CollectionResult(target.collection_id, record, counts)
    try:
        # Two publishers of one collection regenerate the same sub-catalogs and index
        # from the manifests; they take turns (the lease lives in the destination).
        with hold(pub.dest, publish_lease(target.collection_id), ttl=pub.lease_ttl,
                  on_wait=lambda info: log.warning("%s is held by %s; waiting", info.name,
                                                   info.owner)), \
                recording(pub.source, record, counts):
            _CollectionRun(pub, targets, target, record, counts, progress, only).run(start,
                                                                                     stop)
            record.status = "complete"
    except Exception as exc:  # recorded (redacted) by `recording`; other collections go on
        log.error("publishing %s failed: %s", target.collection_id, exc)
    return result


class _CollectionRun:
    def __init__(self, pub: Publication, targets: list[Target], target: Target,
                 record: RunRecord, counts: dict[str, int], progress: Progress | None,
                 only: frozenset[str] | None = None) -> None:
        self.only = only
        self.pub, self.target, self.record, self.counts = pub, target, record, counts
        self.progress = progress
        self.writer = CatalogWriter(pub.dest)
        self.prefix = target.prefix
        self.cid = target.collection_id
        self.root_title = pub.config.title if target.public else f"{target.owner} (private)"
        self.processed = processed_collections(pub.source)
        # Published documents of this run, so a month's index need not read them back;
        # bounded, so a publish of millions of items stays within memory.
        self._docs: dict[str, Doc] = {}
        self._rekeyed: set[tuple[str, str]] = set()  # months where an item changed day

    def run(self, start: datetime | None, stop: datetime | None) -> None:
        source_collection = reader.read_json(self.pub.source, layout.collection_key(self.cid))
        if source_collection is None:
            raise PublishError(f"collection {self.cid} is not in the working catalog")
        self._retire_other_copies()
        months = load_months(self.pub.dest, self.prefix)
        changed: dict[tuple[str, str], set[str]] = defaultdict(set)
        window_months: set[tuple[str, str]] = set()
        placed: dict[str, tuple[str, str]] = {}  # item id → the month it is published in
        for src_key, item, dt in self._window_items(start, stop):
            self.counts["items"] += 1
            y, m, _ = layout.day_parts(dt)
            window_months.add((y, m))
            placed[item["id"]] = (y, m)
            month = months.setdefault((y, m), Month(y, m))
            if self._publish_item(src_key, item, dt, month):
                changed[(y, m)].add(item["id"])
        gone = self._gone(months, placed, start, stop)
        for ym, ids in gone.items():
            for item_id in ids:
                del months[ym].items[item_id]
            changed[ym] |= ids
            self.counts["withdrawn"] += len(ids)
        touched = window_months | set(gone)
        # Before the manifests forget withdrawn or moved items, note where their files are:
        # a run that crashes before its sweep leaves the next one that list.
        mark_sweep(self.writer, self.prefix, add=self._rekeyed | set(gone))
        # Branches are rewritten before the manifests forget withdrawn items: after a crash
        # in between, the next run finds them in the manifests again.
        self._write_tree(months, touched)
        merged = set()
        for ym in sorted(touched):
            if changed[ym]:
                ours = months[ym].items
                months[ym] = save_month(self.writer, self.prefix, months[ym], changed[ym])
                if months[ym].items != ours:
                    merged.add(ym)  # a concurrent publisher's entries: link them too
        self._write_tree(months, merged)
        # Every month, not just those touched: a crash may have left another's index behind
        # its manifest (the check is in memory, the write only where they differ).
        for ym in sorted(months):
            self._write_index(months, ym)
        self._write_collection(source_collection, months)
        # Limited to some items (a campaign's window), a run sweeps only where it (or a
        # run that crashed) moved or withdrew something; a whole window is swept.
        swept = months_to_sweep(self.pub.dest, self.prefix)
        self._sweep(months, (window_months if self.only is None else self._rekeyed)
                    | set(gone) | swept)
        mark_sweep(self.writer, self.prefix, done=self._rekeyed | set(gone) | swept)
        self._relink_versions(source_collection)

    def pending(self, start: datetime | None, stop: datetime | None) -> int:
        """Items of the window whose published form is missing or out of date, plus one
        when the collection is not yet linked from its parent (nothing is written)."""
        months = load_months(self.pub.dest, self.prefix)
        todo = 0
        placed: dict[str, tuple[str, str]] = {}
        for src_key, item, dt in self._window_items(start, stop):
            key = layout.item_key(self.prefix, item["id"], dt)
            y, m, _ = layout.day_parts(dt)
            placed[item["id"]] = (y, m)
            try:
                doc, _ = self._item_doc(src_key, item, key, _placeholder_presigner)
            except ValueError:
                todo += 1
                continue
            entry = months.get((y, m), Month(y, m)).items.get(item["id"])
            if not _is_current(entry, hashlib.sha256(dumps(doc)).hexdigest()):
                todo += 1
        todo += sum(len(ids) for ids in self._gone(months, placed, start, stop).values())
        # a run killed between a manifest and its index: the index is behind
        todo += sum(1 for month in months.values() if month.index != month.items_digest()
                    and (month.items or month.index is not None))
        parent = paths.parent_key(self.target.owner, self.target.public)
        linked = layout.collection_key(self.prefix) in _child_keys(self.pub.dest, parent)
        return todo + (0 if linked else 1)

    # -- items that left: moved to another month, or no longer in the working catalog --

    def _gone(self, months: dict[tuple[str, str], Month], placed: dict[str, tuple[str, str]],
              start: datetime | None, stop: datetime | None) -> dict[tuple[str, str], set[str]]:
        """Published entries to withdraw, per month: an item now published in another
        month (its datetime moved), and, unless the run is limited to some items, an item
        of a day inside the window that the working catalog no longer has there."""
        gone: dict[tuple[str, str], set[str]] = defaultdict(set)
        for ym, month in months.items():
            for item_id, entry in month.items.items():
                if item_id in placed:
                    if placed[item_id] != ym:
                        gone[ym].add(item_id)
                elif self.only is None and _day_within(ym, entry["day"], start, stop):
                    gone[ym].add(item_id)
        return dict(gone)

    def _sweep(self, months: dict[tuple[str, str], Month], touched: set[tuple[str, str]]
               ) -> None:
        """Delete what the rewritten branches of ``touched`` months no longer link: the
        folders of items withdrawn or moved to another day, emptied day, month and year
        catalogs. Only after the catalogs above stopped linking them."""
        p = self.prefix
        for y, m in sorted(touched):
            month = months.get((y, m)) or Month(y, m)
            folders = {posixpath.dirname(f"{p}/{e['key']}") for e in month.items.values()}
            days = {e["day"] for e in month.items.values()}
            base = f"{p}/{y}/{m}/"
            doomed = []
            for key in self.pub.dest.list(base.rstrip("/")):
                parts = key[len(base):].split("/")
                if parts == ["catalog.json"]:
                    if not month.items:
                        doomed.append(key)
                elif len(parts) == 2 and parts[1] == "catalog.json":
                    if parts[0] not in days:
                        doomed.append(key)
                elif len(parts) >= 3 and f"{base}{parts[0]}/{parts[1]}" not in folders:
                    doomed.append(key)
            for key in doomed:
                self.pub.dest.delete(key)
            self.counts["files_deleted"] += len(doomed)
        for y in sorted({y for y, _ in touched}):
            if not any(month.items for (yy, _), month in months.items() if yy == y):
                self.pub.dest.delete(layout.year_key(p, y))

    # -- items ---------------------------------------------------------------------

    def _window_items(self, start: datetime | None, stop: datetime | None
                      ) -> Iterator[tuple[str, Doc, datetime]]:
        """(key, item, placing datetime) of the working items in ``[start, stop)``, read on
        threads (S3 latency), reporting progress."""
        keys = [k for k in reader.item_keys(self.pub.source, self.cid, start, stop)
                if self.only is None or k in self.only]
        workers = max(1, self.pub.source.write_concurrency)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            docs = pool.map(lambda k: reader.read_json(self.pub.source, k), keys)
            for n, (src_key, item) in enumerate(zip(keys, docs, strict=True)):
                if self.progress:
                    self.progress(self.cid, n, len(keys))
                if item is None:
                    continue
                dt = layout.item_datetime(item)
                if (start is None or dt >= start) and (stop is None or dt < stop):
                    yield src_key, item, dt

    def _publish_item(self, src_key: str, item: Doc, dt: datetime, month: Month) -> bool:
        """Write the item when its published form changed; True when the manifest did."""
        key = layout.item_key(self.prefix, item["id"], dt)
        try:
            doc, plan = self._item_doc(src_key, item, key, _placeholder_presigner)
        except ValueError as exc:
            return self._reject(item["id"], str(exc))
        digest = hashlib.sha256(dumps(doc)).hexdigest()
        entry = month.items.get(item["id"])
        self.counts["hrefs_withheld"] += len(plan.withheld)
        if _is_current(entry, digest):
            self.counts["unchanged"] += 1
            if not plan.presigned:  # else the stored copy has signatures, this one not
                self._remember(key, doc)
            return False
        if plan.presigned:
            doc, plan = self._item_doc(src_key, item, key, self.pub.presigner)
        data = dumps(doc)
        leaks = find_leaks(data, self.pub.needles)
        if leaks:
            return self._reject(item["id"], "its published form would contain a "
                                + " and a ".join(leaks) + "; not published")
        try:
            for copy in plan.copies:
                self.counts["files_copied"] += self._copy(copy)
        except (OSError, RspyError, ValueError) as exc:
            return self._reject(item["id"], f"copying an asset failed: {exc}")
        self.pub.dest.put(key, data)
        self._remember(key, doc)
        self.counts["published"] += 1
        if entry is not None and f"{self.prefix}/{entry['key']}" != key:
            self._rekeyed.add((month.year, month.month))
        month.items[item["id"]] = _entry(doc, key, self.prefix, digest, plan.presigned,
                                         self.pub.config)
        return True

    def _remember(self, key: str, doc: Doc) -> None:
        if len(self._docs) < DOC_CACHE_ITEMS:
            self._docs[key] = doc

    def _item_doc(self, src_key: str, item: Doc, key: str, presigner: Callable[[str, int], str]
                  ) -> tuple[Doc, Any]:
        plan = plan_assets(item.get("assets", {}), item_key=key, rules=self.pub.config.assets,
                           copy_thumbnails=self.pub.config.thumbnails == "copy",
                           presigner=presigner)
        doc = documents.public_item(
            item, key=key, prefix=self.prefix, collection_id=self.cid,
            owner=self.target.owner, root_key=self.target.root_key,
            root_title=self.root_title, assets=plan.assets,
            links=self._public_links(src_key, key, item.get("links", [])))
        return doc, plan

    def _public_links(self, src_key: str, key: str, links: list[Doc]) -> list[Doc]:
        """The item's own links that may be public: ``derived_from`` to an input item that
        is published where this item's readers can read it; absolute http(s) links other
        than ``via`` (which names the station entity)."""
        out = []
        for link in links:
            rel, href = link["rel"], link["href"]
            if rel in ("root", "parent", "collection", "self", "via"):
                continue
            if "://" in href:
                if urlsplit(href).scheme in ("http", "https"):
                    out.append(link)
                continue
            if rel != "derived_from":
                continue
            target_key = self._published_input(layout.resolve_href(src_key, href))
            if target_key is not None:
                out.append({**link, "href": layout.relative_href(key, target_key)})
        return out

    def _published_input(self, source_key: str) -> str | None:
        return self._published_for(source_key, Placement(self.target.owner, self.target.public))

    def _placement(self, cid: str) -> Placement | None:
        return self.pub.config.placement(cid, processed=cid in self.processed)

    def _published_for(self, source_key: str, reader_at: Placement) -> str | None:
        """Where the working object ``source_key`` is published, when it is and the readers
        of a collection placed at ``reader_at`` can read it there; else None."""
        cid = source_key.split("/", 1)[0]
        placement = self._placement(cid)
        if placement is None:
            return None
        readable = placement.public or (not reader_at.public
                                        and placement.owner == reader_at.owner)
        if not readable:
            return None
        dest_key = paths.relocate(source_key, cid, paths.collection_prefix(
            placement.owner, cid, placement.public))
        return dest_key if self.pub.dest.exists(dest_key) else None

    # -- version series ----------------------------------------------------------------

    def _version_links(self, cid: str, source: Doc, placement: Placement) -> list[Doc]:
        """The version links of working collection ``cid`` made public for its copy at
        ``placement``: each to the sibling's published collection, or dropped when that is
        not published or not readable by the copy's readers."""
        key = layout.collection_key(paths.collection_prefix(placement.owner, cid,
                                                            placement.public))
        out = []
        for link in source.get("links", []):
            sibling = _version_sibling(cid, link)
            if sibling is None:
                continue
            # Its own copy is the one being written, so it counts as there.
            target = key if sibling == cid else self._published_for(
                layout.collection_key(sibling), placement)
            if target is not None:
                out.append({**link, "href": layout.relative_href(key, target)})
        return out

    def _version_family(self, source: Doc) -> dict[str, Doc]:
        """This collection and every working collection its version links reach,
        transitively (a new version changes the ``latest-version`` of all the others)."""
        family = {self.cid: source}
        todo = [self.cid]
        while todo:
            cid = todo.pop()
            for link in family[cid].get("links", []):
                sibling = _version_sibling(cid, link)
                if sibling is None or sibling in family:
                    continue
                doc = reader.read_json(self.pub.source, layout.collection_key(sibling))
                if doc is not None:
                    family[sibling] = doc
                    todo.append(sibling)
        return family

    def _relink_versions(self, source: Doc) -> None:
        """Make the published collections of this collection's version series link what
        is published now. Each is updated under compare-and-swap, and only when its links
        change; its own copy too, in case a sibling's publish overwrote it meanwhile."""
        if not any(_version_sibling(self.cid, link) for link in source.get("links", [])):
            return  # not a version of anything: its copy was just written without such links
        for cid, doc in sorted(self._version_family(source).items()):
            placement = self._placement(cid)
            if placement is None:
                continue
            key = layout.collection_key(paths.collection_prefix(placement.owner, cid,
                                                                placement.public))
            links = self._version_links(cid, doc, placement)

            def change(current: Doc | None, links: list[Doc] = links) -> Doc | None:
                if current is None:
                    return None
                new = with_version_links(current, links)
                leaks = find_leaks(dumps(new), self.pub.needles) if new is not current else []
                if leaks:
                    raise PublishError(f"collection {current.get('id')} would contain a "
                                       f"{' and a '.join(leaks)}; fix its version links")
                return new

            self.writer.update(key, change)

    def _copy(self, copy: Copy) -> int:
        n = 0
        for rel, data in self.pub.copier(copy.source):
            key = f"{copy.key}/{rel}" if rel else copy.key
            kind = mimetypes.guess_type(key)[0] or "application/octet-stream"
            self.pub.dest.put(key, data, content_type=kind)
            n += 1
        if n == 0:
            raise PublishError(f"{copy.source}: nothing to copy")
        return n

    def _reject(self, item_id: str, reason: str) -> bool:
        from rspy_batch.catalog.records import Rejection

        self.record.rejected.append(Rejection(item_id, reason))
        self.counts["rejected"] += 1
        log.warning("not publishing %s/%s: %s", self.cid, item_id, reason)
        return False

    # -- the tree below the collection ---------------------------------------------

    def _write_tree(self, months: dict[tuple[str, str], Month],
                    window_months: set[tuple[str, str]]) -> None:
        p, cid, root, rt = self.prefix, self.cid, self.target.root_key, self.root_title
        years_touched = sorted({y for y, _ in window_months})
        for (y, m) in sorted(window_months):
            month = months[(y, m)]
            days: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for item_id, entry in month.items.items():
                days[entry["day"]].append((f"{p}/{entry['key']}", item_id))
            for d, children in sorted(days.items()):
                self._ensure(layout.day_key(p, y, m, d), documents.sub_catalog(
                    key=layout.day_key(p, y, m, d), prefix=p, collection_id=cid,
                    label=f"{y}-{m}-{d}", root_key=root, root_title=rt,
                    parent_key=layout.month_key(p, y, m), parent_title=f"{cid} {y}-{m}",
                    children=sorted(children), rel="item"))
            if days:
                self._ensure(layout.month_key(p, y, m), documents.sub_catalog(
                    key=layout.month_key(p, y, m), prefix=p, collection_id=cid,
                    label=f"{y}-{m}", root_key=root, root_title=rt,
                    parent_key=layout.year_key(p, y), parent_title=f"{cid} {y}",
                    children=[(layout.day_key(p, y, m, d), f"{cid} {y}-{m}-{d}")
                              for d in sorted(days)]))
        for y in years_touched:
            ms = sorted(m for (yy, m), month in months.items() if yy == y and month.items)
            if ms:
                self._ensure(layout.year_key(p, y), documents.sub_catalog(
                    key=layout.year_key(p, y), prefix=p, collection_id=cid, label=y,
                    root_key=root, root_title=rt, parent_key=layout.collection_key(p),
                    parent_title=cid,
                    children=[(layout.month_key(p, y, m), f"{cid} {y}-{m}") for m in ms]))

    def _write_index(self, months: dict[tuple[str, str], Month], ym: tuple[str, str]) -> None:
        from rspy_batch.publish.index import write_month_index

        month = months[ym]
        digest = month.items_digest()
        if month.index == digest:
            return
        keys = [f"{self.prefix}/{e['key']}" for _, e in sorted(month.items.items())]
        docs = [d for d in (self._docs.get(k) or reader.read_json(self.pub.dest, k)
                            for k in keys) if d is not None]
        write_month_index(self.pub.dest, self.prefix, month.year, month.month, docs)
        month.index = digest
        months[ym] = save_month(self.writer, self.prefix, month)

    def _write_collection(self, source: Doc, months: dict[tuple[str, str], Month]) -> None:
        entries = [e for month in months.values() for e in month.items.values()]
        populated = sorted((y, m) for (y, m), month in months.items() if month.items)
        doc = documents.public_collection(
            source, prefix=self.prefix, owner=self.target.owner,
            root_key=self.target.root_key, root_title=self.root_title,
            parent_key=paths.parent_key(self.target.owner, self.target.public),
            parent_title=(self.target.owner if self.target.public
                          else f"{self.target.owner} (private)"),
            years=sorted({y for y, _ in populated}), entries=entries,
            index_months=[f"{y}-{m}" for y, m in populated],
            keep_link=lambda lk: urlsplit(lk["href"]).scheme in ("http", "https"),
            links=self._version_links(self.cid, source, Placement(self.target.owner,
                                                                  self.target.public)))
        leaks = find_leaks(dumps(doc), self.pub.needles)
        if leaks:
            raise PublishError(f"collection {self.cid} would contain a {' and a '.join(leaks)}"
                               "; fix its template")
        self._ensure(layout.collection_key(self.prefix), doc)

    def _ensure(self, key: str, doc: Doc) -> None:
        """Write ``doc`` unless the store holds these bytes already."""
        data = dumps(doc)
        blob = self.pub.dest.read(key)
        if blob is None or blob.data != data:
            self.pub.dest.put(key, data)

    # -- a collection that moved (owner or visibility changed) -----------------------

    def _retire_other_copies(self) -> None:
        """Unlink and delete this collection's copies under another owner or visibility:
        a collection made private must not stay readable where it was public."""
        for prefix in sorted(known_prefixes(self.pub.dest)):
            if prefix == self.prefix or prefix.rsplit("/", 1)[-1] != self.cid:
                continue
            parts = prefix.split("/")
            parent = (paths.private_root_key(parts[0]) if len(parts) == 3
                      else paths.owner_key(parts[0]))
            _unlink_child(self.writer, parent, layout.collection_key(prefix))
            for key in list(self.pub.dest.list(prefix)):
                self.pub.dest.delete(key)
            for key in list(self.pub.dest.list(paths.manifest_prefix(prefix))):
                self.pub.dest.delete(key)
            log.info("%s moved from %s to %s: old copy removed", self.cid, prefix, self.prefix)


# -- owner catalogs and roots ------------------------------------------------------------

def _link_parents(pub: Publication, targets: list[Target]) -> None:
    """Link each published collection from its owner catalog (or private root), and each
    owner catalog from the public root, keeping what earlier runs linked."""
    writer = CatalogWriter(pub.dest)
    by_parent: dict[tuple[str, bool], list[Target]] = defaultdict(list)
    for t in targets:
        by_parent[(t.owner, t.public)].append(t)
    for (owner, public), ts in sorted(by_parent.items()):
        key = paths.parent_key(owner, public)
        root_key = paths.root_key(owner, public)
        root_title = pub.config.title if public else f"{owner} (private)"
        children = [(layout.collection_key(t.prefix), _collection_title(pub.dest, t))
                    for t in ts]
        _merge_catalog(writer, key, children, lambda kids, o=owner, p=public, k=key, r=root_key,
                       rt=root_title: documents.owner_catalog(
                           owner=o, key=k, root_key=r, root_title=rt, public=p, children=kids))
    owners = sorted({t.owner for t in targets if t.public})
    if owners or not pub.dest.exists(paths.ROOT):
        _merge_catalog(writer, paths.ROOT, [(paths.owner_key(o), o) for o in owners],
                       lambda kids: documents.root_catalog(
                           title=pub.config.title, description=pub.config.description,
                           public_url=pub.public_url, children=kids,
                           hints=pub.config.stac_browser))


def _merge_catalog(writer: CatalogWriter, key: str, children: list[tuple[str, str]],
                   build: Callable[[list[tuple[str, str]]], Doc]) -> None:
    def change(current: Doc | None) -> Doc:
        kids = dict(children)
        for link in (current or {}).get("links", []):
            if link["rel"] == "child":
                child = layout.resolve_href(key, link["href"])
                kids.setdefault(child, link.get("title") or child)
        return build(sorted(kids.items()))

    writer.update(key, change)


def _day_within(ym: tuple[str, str], day: str, start: datetime | None,
                end: datetime | None) -> bool:
    """Whether the whole UTC day lies in ``[start, end)``: only then does a window's
    listing of the working catalog say everything about it."""
    first = datetime(int(ym[0]), int(ym[1]), int(day), tzinfo=UTC)
    return (start is None or first >= start) and (end is None or first + timedelta(days=1) <= end)


def _child_keys(store: Store, key: str) -> set[str]:
    doc = reader.read_json(store, key) or {}
    return {layout.resolve_href(key, lk["href"]) for lk in doc.get("links", [])
            if lk["rel"] == "child"}


def _unlink_child(writer: CatalogWriter, parent: str, child: str) -> None:
    def change(current: Doc | None) -> Doc | None:
        if current is None:
            return None
        links = [lk for lk in current["links"] if not (
            lk["rel"] == "child" and layout.resolve_href(parent, lk["href"]) == child)]
        return {**current, "links": links}

    writer.update(parent, change)


def _collection_title(store: Store, target: Target) -> str:
    doc = reader.read_json(store, layout.collection_key(target.prefix)) or {}
    return doc.get("title") or target.collection_id


# -- pure helpers ----------------------------------------------------------------------

def _version_sibling(cid: str, link: Doc) -> str | None:
    """The collection id a version link of working collection ``cid`` names, or None
    (another rel, an absolute href, or an href that is not a sibling collection file)."""
    if link.get("rel") not in VERSION_RELS or "://" in link.get("href", ""):
        return None
    key = layout.resolve_href(layout.collection_key(cid), link["href"])
    sibling = key.split("/", 1)[0]
    if layout.unsafe_id_reason(sibling) or key != layout.collection_key(sibling):
        return None
    return sibling


def _placeholder_presigner(url: str, seconds: int) -> str:
    """Stands in for a signature while deciding whether an item changed: presigned URLs
    differ on every call, the item does not."""
    return f"{url}{PRESIGN_MARK}{seconds}"


def _is_current(entry: dict[str, Any] | None, digest: str) -> bool:
    """Whether the published item recorded by ``entry`` is this digest and still fresh."""
    return bool(entry) and entry["digest"] == digest and not _presign_due(entry)


def _presign_due(entry: dict[str, Any], at: datetime | None = None) -> bool:
    """A presigned item is re-signed once half its URLs' lifetime has passed."""
    if not entry.get("signed"):
        return False
    signed = layout.parse_datetime(entry["signed"])
    return (at or datetime.now(UTC)) >= signed + timedelta(seconds=entry["expires"] / 2)


def _entry(doc: Doc, key: str, prefix: str, digest: str, presigned: bool,
           config: PublishConfig) -> dict[str, Any]:
    props = doc["properties"]
    start = props.get("start_datetime") or props.get("datetime")
    end = props.get("end_datetime") or props.get("datetime") or start
    entry: dict[str, Any] = {
        "key": key[len(prefix) + 1:],
        "digest": digest,
        "day": key.split("/")[-3],
        "bbox": doc.get("bbox"),
        "interval": [layout.format_datetime(layout.parse_datetime(start)),
                     layout.format_datetime(layout.parse_datetime(end))] if start else None,
        "summary": documents.summary_values(props),
    }
    if presigned:
        entry["signed"] = layout.format_datetime(datetime.now(UTC))
        entry["expires"] = min(r.presign for r in config.assets if r.presign)
    return entry

