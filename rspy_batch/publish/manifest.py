"""What has been published, per collection and month: the publish manifests.

One JSON object per collection prefix and month (``_rspy/publish/<prefix>/<YYYY>-<MM>.json``)
maps each published item id to its published key, the digest of its published bytes, and
what its collection's extent, summaries and sub-catalogs need. The manifests are how a
re-run knows what is already there without reading every published item, how the
sub-catalogs are regenerated to link exactly the published items, and how the index of a
month is known to be current (``index`` = digest over the month's item digests).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rspy_batch.catalog.jsonio import loads
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.writer import CatalogWriter
from rspy_batch.publish import paths

_MONTH_FILE = re.compile(r"\d{4}-\d{2}\.json")

Entry = dict[str, Any]
"""``{"key", "digest", "day", "bbox", "interval", "summary", "signed"?, "expires"?}``"""


@dataclass
class Month:
    year: str
    month: str
    items: dict[str, Entry] = field(default_factory=dict)
    index: str | None = None

    @property
    def label(self) -> str:
        return f"{self.year}-{self.month}"

    def items_digest(self) -> str:
        h = hashlib.sha256()
        for item_id in sorted(self.items):
            h.update(f"{item_id}:{self.items[item_id]['digest']}\n".encode())
        return h.hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"items": dict(sorted(self.items.items())), "index": self.index}


def load_months(store: Store, prefix: str) -> dict[tuple[str, str], Month]:
    months = {}
    folder = paths.manifest_prefix(prefix) + "/"
    for key in store.list(paths.manifest_prefix(prefix)):
        name = key.rsplit("/", 1)[-1]
        if not _MONTH_FILE.fullmatch(name) or "/" in key[len(folder):]:
            continue
        year, _, month = name[:-5].partition("-")
        blob = store.read(key)
        if blob is None:
            continue
        data = loads(blob.data)
        months[(year, month)] = Month(year, month, dict(data.get("items", {})), data.get("index"))
    return months


def save_month(writer: CatalogWriter, prefix: str, month: Month,
               changed: Iterable[str] = ()) -> Month:
    """Store ``month``, merging with a concurrent publisher's entries: ours win for the ids
    in ``changed``, theirs for the rest. Returns the month as stored."""
    changed = set(changed)

    def change(current: dict | None) -> dict:
        stored = dict((current or {}).get("items", {}))
        merged = {**month.items, **{k: v for k, v in stored.items() if k not in changed}}
        index = month.index if merged == month.items else None
        return {"items": dict(sorted(merged.items())), "index": index}

    stored = writer.update(paths.manifest_key(prefix, month.year, month.month), change) or {}
    return Month(month.year, month.month, dict(stored.get("items", {})), stored.get("index"))


def months_to_sweep(store: Store, prefix: str) -> set[tuple[str, str]]:
    """Months a run withdrew or moved items in and may not have swept (it crashed)."""
    blob = store.read(paths.sweep_key(prefix))
    return {(y, m) for y, m in loads(blob.data)["months"]} if blob else set()


def mark_sweep(writer: CatalogWriter, prefix: str, add: set[tuple[str, str]] = frozenset(),
               done: set[tuple[str, str]] = frozenset()) -> None:
    """Record months to sweep before the manifests forget what is to be deleted there
    (``add``); forget them once swept (``done``)."""
    def change(current: dict | None) -> dict | None:
        months = {tuple(ym) for ym in (current or {}).get("months", [])}
        new = (months | set(add)) - set(done)
        return None if new == months else {"months": sorted(new)}

    writer.update(paths.sweep_key(prefix), change)


def known_prefixes(store: Store) -> set[str]:
    """Every collection prefix something was ever published under."""
    found = set()
    for key in store.list(paths.MANIFEST_PREFIX):
        rest = key[len(paths.MANIFEST_PREFIX) + 1:]
        if rest.endswith(".json") and "/" in rest:
            found.add(rest.rsplit("/", 1)[0])
    return found
