"""Versioned collections: one collection per processor version, linked as a series.

A reprocessing campaign writes its outputs into ``<base>-v<version>`` and keeps the older
versions. The collections of one series carry the STAC version extension's ``version``
field and link each other with ``latest-version``, ``predecessor-version`` and
``successor-version`` (relative hrefs), so a reader of any version finds the others.
``deprecated`` is never set here: a campaign may reprocess only part of the time range, so
an older version is not necessarily superseded everywhere.
"""

from __future__ import annotations

import re
from typing import Any

from packaging.version import InvalidVersion, Version

from rspy_batch.catalog import layout, reader
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.writer import JSON, CatalogWriter, sorted_links
from rspy_batch.errors import ConflictError

LATEST = "latest-version"
PREDECESSOR = "predecessor-version"
SUCCESSOR = "successor-version"
VERSION_RELS = frozenset({LATEST, PREDECESSOR, SUCCESSOR})
#: How often the series is re-read when collections join it while it is being linked.
SETTLE_ATTEMPTS = 10

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Doc = dict[str, Any]


def versioned_id(base: str, version: str) -> str:
    """The id of ``base``'s collection for ``version``: ``<base>-v<version>`` with every
    character a collection id cannot hold replaced by ``_`` (``1.0.0+local`` gives
    ``<base>-v1.0.0_local``)."""
    if not version:
        raise ValueError("version is empty")
    # ".." would pass the character filter but is refused as a dot-segment.
    safe = _UNSAFE.sub("_", version)
    while ".." in safe:
        safe = safe.replace("..", "._")
    cid = f"{base}-v{safe}"
    reason = layout.unsafe_id_reason(cid)
    if reason:
        raise ValueError(f"versioned collection id of {base!r} and {version!r}: {reason}")
    return cid


def version_order(version: str) -> tuple[Any, ...]:
    """Sort key of a version: PEP 440 order when ``packaging`` can parse it (1.10.0 after
    1.9.0), else plain string order, unparseable versions before parseable ones."""
    try:
        return (1, Version(version), version)
    except InvalidVersion:
        return (0, version)


def series(store: Store, base: str) -> list[tuple[str, str]]:
    """``(collection id, version)`` of every collection of ``base``'s series linked from
    the working root, oldest first: those carrying a ``version`` whose versioned id is
    their own id."""
    found = []
    for cid in reader.collection_ids(store):
        if not cid.startswith(f"{base}-v"):
            continue
        doc = reader.read_json(store, layout.collection_key(cid)) or {}
        version = doc.get("version")
        if not isinstance(version, str) or not version:
            continue
        try:
            if versioned_id(base, version) != cid:
                continue
        except ValueError:
            continue
        found.append((cid, version))
    return sorted(found, key=lambda entry: (version_order(entry[1]), entry[0]))


def version_links(ids_in_order: list[str], this_id: str) -> list[Doc]:
    """The version links of collection ``this_id`` in a series ordered oldest first:
    ``latest-version`` to the newest (itself included), ``predecessor-version`` and
    ``successor-version`` to its neighbours, as hrefs relative to its collection file."""
    position = ids_in_order.index(this_id)
    here = layout.collection_key(this_id)

    def link(rel: str, other: str) -> Doc:
        return {"rel": rel, "href": layout.relative_href(here, layout.collection_key(other)),
                "type": JSON, "title": other}

    links = [link(LATEST, ids_in_order[-1])]
    if position > 0:
        links.append(link(PREDECESSOR, ids_in_order[position - 1]))
    if position < len(ids_in_order) - 1:
        links.append(link(SUCCESSOR, ids_in_order[position + 1]))
    return sorted(links, key=lambda lk: (lk["rel"], lk["href"]))


def with_version_links(doc: Doc, links: list[Doc]) -> Doc:
    """``doc`` with its version links replaced by ``links`` (other links kept); ``doc``
    itself when they are already these, so an unchanged collection is not rewritten."""
    current = sorted((lk for lk in doc.get("links", []) if lk.get("rel") in VERSION_RELS),
                     key=lambda lk: (lk["rel"], lk["href"]))
    wanted = sorted(links, key=lambda lk: (lk["rel"], lk["href"]))
    if current == wanted:
        return doc
    kept = [lk for lk in doc.get("links", []) if lk.get("rel") not in VERSION_RELS]
    return {**doc, "links": sorted_links(kept + wanted)}


def is_linked(store: Store, base: str) -> bool:
    """Whether every collection of ``base``'s series has exactly its version links (read
    only: what :func:`link_versions` would leave unchanged)."""
    ids = [cid for cid, _version in series(store, base)]
    for cid in ids:
        doc = reader.read_json(store, layout.collection_key(cid))
        if doc is None or with_version_links(doc, version_links(ids, cid)) is not doc:
            return False
    return True


def link_versions(store: Store, base: str) -> list[tuple[str, str]]:
    """Link every collection of ``base``'s series to the others; returns the series.

    Each collection is updated under compare-and-swap and only when its links change, so
    a second call writes nothing. A collection that joins the series meanwhile (another
    campaign finishing) makes the series be read and linked again, so the last writer
    always links the whole series.
    """
    writer = CatalogWriter(store)
    members = series(store, base)
    for _ in range(SETTLE_ATTEMPTS):
        ids = [cid for cid, _version in members]
        for cid in ids:
            links = version_links(ids, cid)
            writer.update(layout.collection_key(cid),
                          lambda doc, links=links: None if doc is None
                          else with_version_links(doc, links))
        again = series(store, base)
        if again == members:
            return members
        members = again
    raise ConflictError(f"series {base}: still changing after {SETTLE_ATTEMPTS} passes")
