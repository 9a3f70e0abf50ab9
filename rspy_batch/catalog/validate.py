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


def validate_catalog(store: Store, *, schemas: bool = True, workers: int = 8
                     ) -> ValidationReport:
    report = ValidationReport()
    root = _load(store, layout.ROOT, report)
    if root is None:
        report.errors.append(f"{store.href(layout.ROOT)}: no root catalog")
        return report
    reached: Counter[str] = Counter()
    visited = {layout.ROOT}
    level: list[tuple[str, dict, str | None]] = [(layout.ROOT, root, None)]
    while level:
        next_level: list[tuple[str, dict, str | None]] = []
        children: list[tuple[str, str]] = []
        for key, doc, parent in level:
            report.objects += 1
            if doc.get("type") == "Feature":
                report.items += 1
            _check_structure(key, doc, parent, report)
            if schemas:
                report.errors += [f"{key}: {e}" for e in validate_dict(doc)]
            for link in doc.get("links", []):
                if link["rel"] in ("child", "item"):
                    target = layout.resolve_href(key, link["href"])
                    reached[target] += 1
                    children.append((target, key))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            docs = list(pool.map(lambda kp: _load(store, kp[0], report), children))
        for (target, parent), doc in zip(children, docs, strict=True):
            if doc is None:
                report.errors.append(f"{parent}: link to missing {target}")
            elif target not in visited:
                visited.add(target)
                next_level.append((target, doc, parent))
        level = next_level
    report.errors += [f"{k}: linked {n} times" for k, n in sorted(reached.items()) if n > 1]
    stored = {k for k in store.list() if k.endswith(".json")
              and not k.startswith(layout.RECORDS_PREFIX)}
    report.orphans = sorted(stored - set(reached) - {layout.ROOT})
    return report


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


def _check_structure(key: str, doc: dict, parent: str | None, report: ValidationReport) -> None:
    def targets(rel: str) -> list[str]:
        return [layout.resolve_href(key, lk["href"]) for lk in doc.get("links", [])
                if lk["rel"] == rel]

    roots = targets("root")
    if roots != [layout.ROOT]:
        report.errors.append(f"{key}: root link should point to {layout.ROOT}, got {roots}")
    if parent is not None and targets("parent") != [parent]:
        report.errors.append(f"{key}: parent link should point to {parent}, "
                             f"got {targets('parent')}")
    if doc.get("type") == "Feature":
        expected = layout.collection_key(key.split("/")[0])
        if targets("collection") != [expected] or doc.get("collection") != key.split("/")[0]:
            report.errors.append(f"{key}: collection link/field should name {expected}")
        if not key.endswith(f"/{doc.get('id')}/{doc.get('id')}.json"):
            report.errors.append(f"{key}: item id {doc.get('id')!r} does not match its path")
