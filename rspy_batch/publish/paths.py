"""Where each published object sits (pure): owner prefixes, public and private roots.

::

    catalog.json                          public root (the only document with a self link)
    <owner>/catalog.json                  owner catalog: the owner's public collections
    <owner>/<cid>/collection.json …       a public collection, laid out as in the working
                                          catalog (year/month/day catalogs, item folders)
    <owner>/<cid>/index/year=Y/month=M/items.parquet   search index (rspy_batch.publish.index)
    <owner>/private/catalog.json          the owner's private root, never linked from the
    <owner>/private/<cid>/…               public tree; its collections live below it
    browser/                              STAC Browser
    _rspy/publish/<collection prefix>/<YYYY>-<MM>.json   what was published (manifests)
    _rspy/publish/<collection prefix>/sweep.json         months whose unlinked files are
                                                         still to be deleted

Below the collection, keys are the working catalog's with the collection id replaced by
the collection prefix, so :mod:`rspy_batch.catalog.layout` computes them.
"""

from __future__ import annotations

ROOT = "catalog.json"
BROWSER_PREFIX = "browser"
MANIFEST_PREFIX = "_rspy/publish"


def owner_key(owner: str) -> str:
    return f"{owner}/catalog.json"


def private_root_key(owner: str) -> str:
    return f"{owner}/private/catalog.json"


def collection_prefix(owner: str, collection_id: str, public: bool) -> str:
    return f"{owner}/{collection_id}" if public else f"{owner}/private/{collection_id}"


def root_key(owner: str, public: bool) -> str:
    """The root a collection's documents point to."""
    return ROOT if public else private_root_key(owner)


def parent_key(owner: str, public: bool) -> str:
    """The catalog that links a collection."""
    return owner_key(owner) if public else private_root_key(owner)


def manifest_prefix(prefix: str) -> str:
    """The folder of a collection's manifests (a ``Store.list`` prefix: no trailing ``/``)."""
    return f"{MANIFEST_PREFIX}/{prefix}"


def manifest_key(prefix: str, year: str, month: str) -> str:
    return f"{MANIFEST_PREFIX}/{prefix}/{year}-{month}.json"


def sweep_key(prefix: str) -> str:
    return f"{MANIFEST_PREFIX}/{prefix}/sweep.json"


def relocate(source_key: str, collection_id: str, prefix: str) -> str:
    """A working-catalog key of collection ``collection_id`` moved under ``prefix``."""
    head, _, rest = source_key.partition("/")
    if head != collection_id:
        raise ValueError(f"{source_key} is not in collection {collection_id}")
    return f"{prefix}/{rest}"
