"""Whole-catalog validation, offline: schemas of every object plus the tree's integrity.

Schema checks use the STAC core and extension schemas shipped with the package
(:mod:`rspy_batch.validation`). Integrity checks are what STAC Browser and every later
stage rely on: each link resolves to a stored file, every document's ``root`` is the
root and its ``parent`` is the document that links it, and each item is reachable
exactly once. Files nothing links (left by a crash before its link was written) are
reported as orphans: harmless to readers, repaired by re-running the task.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from rspy_batch.catalog import layout
from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.versions import VERSION_RELS
from rspy_batch.validation import validate_dict


@dataclass
class ValidationReport:
    objects: int = 0
    items: int = 0
    errors: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_catalog(store: Store, *, schemas: bool = True, workers: int = 8,
                     roots: tuple[str, ...] | None = None) -> ValidationReport:
    """Validate the trees below ``roots`` (default: the root catalog, plus the private
    roots of a published catalog, ``<owner>/private/catalog.json``)."""
    report = ValidationReport()
    if roots is None:
        roots = (layout.ROOT, *sorted(k for k in store.list() if _is_private_root(k)))
    reached: Counter[str] = Counter()
    copies: dict[tuple[str, str], list[str]] = {}  # (collection key, item id) → item keys
    for root_key in roots:
        _validate_tree(store, root_key, report, reached, schemas=schemas, workers=workers,
                       copies=copies)
    report.errors += [f"{k}: linked {n} times" for k, n in sorted(reached.items()) if n > 1]
    # One id at two keys (an item whose datetime moved to another day is filed there too):
    # each key is linked once, but readers see the item twice.
    report.errors += [f"{coll}: item id {item_id!r} is reachable {len(keys)} times: "
                      f"{', '.join(sorted(keys))}"
                      for (coll, item_id), keys in sorted(copies.items()) if len(keys) > 1]
    stored = {k for k in store.list() if k.endswith(".json")
              and not k.startswith((layout.RECORDS_PREFIX, "_rspy/", "browser/"))}
    report.orphans = sorted(stored - set(reached) - set(roots))
    return report


def _is_private_root(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and parts[1:] == ["private", "catalog.json"]


def _validate_tree(store: Store, root_key: str, report: ValidationReport,
                   reached: Counter[str], *, schemas: bool, workers: int,
                   copies: dict[tuple[str, str], list[str]]) -> None:
    root = _load(store, root_key, report)
    if root is None:
        report.errors.append(f"{store.href(root_key)}: no root catalog")
        return
    visited = {root_key}
    # (key, document, key of the document linking it, key of the nearest collection)
    level: list[tuple[str, dict, str | None, str | None]] = [(root_key, root, None, None)]
    while level:
        next_level: list[tuple[str, dict, str | None, str | None]] = []
        children: list[tuple[str, str, str | None]] = []
        for key, doc, parent, collection in level:
            report.objects += 1
            if doc.get("type") == "Feature":
                report.items += 1
                copies.setdefault((collection or "", str(doc.get("id"))), []).append(key)
            if doc.get("type") == "Collection":
                collection = key
            _check_structure(store, key, doc, parent, root_key, collection, report)
            if schemas:
                report.errors += [f"{key}: {e}" for e in validate_dict(doc)]
            for link in doc.get("links", []):
                if link["rel"] in ("child", "item"):
                    target = layout.resolve_href(key, link["href"])
                    reached[target] += 1
                    children.append((target, key, collection))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            docs = list(pool.map(lambda c: _load(store, c[0], report), children))
        for (target, parent, collection), doc in zip(children, docs, strict=True):
            if doc is None:
                report.errors.append(f"{parent}: link to missing {target}")
            elif target not in visited:
                visited.add(target)
                next_level.append((target, doc, parent, collection))
        level = next_level


def _load(store: Store, key: str, report: ValidationReport) -> dict | None:
    blob = store.read(key)
    if blob is None:
        return None
    try:
        doc = loads(blob.data)
    except ValueError as exc:
        report.errors.append(f"{key}: not valid JSON ({exc})")
        return None
    if not isinstance(doc, dict):
        report.errors.append(f"{key}: not a JSON object")
        return None
    return doc


def _check_structure(store: Store, key: str, doc: dict, parent: str | None, root_key: str,
                     collection: str | None, report: ValidationReport) -> None:
    def targets(rel: str) -> list[str]:
        return [layout.resolve_href(key, lk["href"]) for lk in doc.get("links", [])
                if lk["rel"] == rel]

    roots = targets("root")
    if roots != [root_key]:
        report.errors.append(f"{key}: root link should point to {root_key}, got {roots}")
    if parent is not None and targets("parent") != [parent]:
        report.errors.append(f"{key}: parent link should point to {parent}, "
                             f"got {targets('parent')}")
    if doc.get("type") == "Feature":
        collection_id = collection.rsplit("/", 2)[-2] if collection else None
        if targets("collection") != [collection] or doc.get("collection") != collection_id:
            report.errors.append(f"{key}: collection link/field should name {collection}")
        if not key.endswith(f"/{doc.get('id')}/{doc.get('id')}.json"):
            report.errors.append(f"{key}: item id {doc.get('id')!r} does not match its path")
    for link in doc.get("links", []):
        # Links other than the tree's must resolve too (derived_from to an input item,
        # version links to a sibling collection): a reader following one must not land
        # on a missing file.
        if ((link["rel"] == "derived_from" or link["rel"] in VERSION_RELS)
                and "://" not in link["href"]
                and not store.exists(layout.resolve_href(key, link["href"]))):
            report.errors.append(f"{key}: {link['rel']} link to missing {link['href']}")
