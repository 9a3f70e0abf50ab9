"""The published STAC documents (pure): items, the catalogs between them, collections,
owner catalogs and the roots.

Below each collection the published tree is regenerated from what was published (the
manifests), not copied from the working catalog: a day catalog links exactly the items
that are there, so a reader never follows a link to an item that was withheld or not
written yet. Every link is relative except the public root's ``self``, which is the URL
STAC Browser is given (pystac's RELATIVE_PUBLISHED).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.catalog.versions import VERSION_RELS
from rspy_batch.catalog.writer import GEOJSON, STAC_VERSION, make_link, sorted_links
from rspy_batch.publish import paths
from rspy_batch.publish.assets import ALTERNATE_EXT, uses_alternates

Doc = dict[str, Any]
OWNERSHIP = "https://home.rs-python.eu/ownership-stac-extension/v1.1.0/schema.json"
PARQUET = "application/vnd.apache.parquet"

#: Item properties summarised per collection: listed values, or a range for numbers.
LISTED = ("platform", "constellation", "instruments", "product:type", "processing:level",
          "sat:orbit_state", "gsd")
RANGED = ("eo:cloud_cover",)
SUMMARY_FIELDS = LISTED + RANGED


def public_item(item: Doc, *, key: str, prefix: str, collection_id: str, owner: str,
                root_key: str, root_title: str, assets: Doc, links: Iterable[Doc]) -> Doc:
    """The published form of a working-catalog item at ``key``.

    ``assets`` come from :func:`rspy_batch.publish.assets.plan_assets`; ``links`` are the
    item's own links already made public (relative, or dropped by the caller).
    """
    y, m, d = key.split("/")[-5:-2]
    props = {k: v for k, v in item["properties"].items() if not k.startswith("rspy:")}
    props["owner"] = owner
    extensions = set(item.get("stac_extensions", [])) | {OWNERSHIP}
    if not uses_alternates(assets):
        extensions.discard(ALTERNATE_EXT)
    doc: Doc = {
        "type": "Feature",
        "stac_version": item.get("stac_version", STAC_VERSION),
        "stac_extensions": sorted(extensions),
        "id": item["id"],
        "geometry": item.get("geometry"),
        "properties": props,
        "links": [
            make_link("root", layout.relative_href(key, root_key), root_title),
            make_link("parent", layout.relative_href(key, layout.day_key(prefix, y, m, d)),
                      f"{collection_id} {y}-{m}-{d}"),
            make_link("collection", layout.relative_href(key, layout.collection_key(prefix)),
                      collection_id),
            *sorted(links, key=lambda lk: (lk["rel"], lk["href"])),
        ],
        "assets": assets,
        "collection": collection_id,
    }
    if item.get("bbox"):
        doc["bbox"] = item["bbox"]
    return doc


def sub_catalog(*, key: str, prefix: str, collection_id: str, label: str, root_key: str,
                root_title: str, parent_key: str, parent_title: str,
                children: Sequence[tuple[str, str]], rel: str = "child") -> Doc:
    """A year, month or day catalog; ``children`` are (key, title) of what it links."""
    kind = GEOJSON if rel == "item" else "application/json"
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": f"{collection_id}-{label}",
        "title": f"{collection_id} {label}",
        "description": f"{collection_id} items dated {label}",
        "links": sorted_links([
            make_link("root", layout.relative_href(key, root_key), root_title),
            make_link("parent", layout.relative_href(key, parent_key), parent_title),
            *(make_link(rel, layout.relative_href(key, ckey), title, kind)
              for ckey, title in children),
        ]),
    }


def public_collection(source: Doc, *, prefix: str, owner: str, root_key: str, root_title: str,
                      parent_key: str, parent_title: str, years: Sequence[str],
                      entries: Iterable[Mapping[str, Any]], index_months: Sequence[str],
                      keep_link: Any, links: Iterable[Doc] = ()) -> Doc:
    """The published collection: the working one's description, its owner, links to the
    published years, and extent and summaries of the published items (``entries`` are
    manifest entries). ``keep_link(link) -> bool`` filters the template's own links;
    ``links`` are its version links already made public (relative, or dropped by the
    caller), the working ones naming collections of the working catalog."""
    key = layout.collection_key(prefix)
    entries = list(entries)
    doc = {k: v for k, v in source.items() if k not in ("links", "assets")}
    doc["owner"] = owner
    doc["stac_extensions"] = sorted(set(source.get("stac_extensions", [])) | {OWNERSHIP})
    doc["extent"] = extent(entries) if entries else source["extent"]
    summaries = dict(source.get("summaries") or {})
    summaries.update(summarise(e.get("summary", {}) for e in entries))
    if summaries:
        doc["summaries"] = summaries
    own = [lk for lk in source.get("links", [])
           if lk["rel"] not in ("root", "parent", "child", "item", "self", "collection")
           and lk["rel"] not in VERSION_RELS and keep_link(lk)]
    doc["links"] = sorted_links([
        make_link("root", layout.relative_href(key, root_key), root_title),
        make_link("parent", layout.relative_href(key, parent_key), parent_title),
        *(make_link("child", layout.relative_href(key, layout.year_key(prefix, y)),
                    f"{source['id']} {y}") for y in years),
        *own,
        *links,
    ])
    if index_months:
        # stac-geoparquet's convention: the item table as a collection asset.
        doc["assets"] = {"geoparquet-items": {
            "href": "./index/", "type": PARQUET, "roles": ["stac-items"],
            "title": "Items as stac-geoparquet, partitioned by year and month (hive layout)",
            "description": "Months: " + ", ".join(index_months)}}
    return doc


def root_catalog(*, title: str, description: str, public_url: str,
                 children: Sequence[tuple[str, str]], hints: Mapping[str, Any]) -> Doc:
    """The public root: the only absolute link is its own ``self``, which must equal the
    ``catalogUrl`` STAC Browser is configured with."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "rspy-batch",
        "title": title,
        "description": description,
        "stac_browser": dict(hints),
        "links": sorted_links([
            make_link("self", public_url + paths.ROOT, title),
            make_link("root", "./" + paths.ROOT, title),
            *(make_link("child", layout.relative_href(paths.ROOT, ckey), ctitle)
              for ckey, ctitle in children),
        ]),
    }


def owner_catalog(*, owner: str, key: str, root_key: str, root_title: str, public: bool,
                  children: Sequence[tuple[str, str]]) -> Doc:
    """An owner's catalog (public: child of the root) or private root (its own root)."""
    links = [make_link("root", layout.relative_href(key, root_key), root_title)]
    if public:
        links.append(make_link("parent", layout.relative_href(key, paths.ROOT), root_title))
    links += [make_link("child", layout.relative_href(key, ckey), ctitle)
              for ckey, ctitle in children]
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": f"{owner}" if public else f"{owner}-private",
        "title": f"{owner}" if public else f"{owner} (private)",
        "description": (f"Collections owned by {owner}" if public else
                        f"Private collections of {owner}: readable only with {owner}'s "
                        f"credentials"),
        "links": sorted_links(links),
    }


def summary_values(props: Mapping[str, Any]) -> dict[str, Any]:
    """What one item contributes to its collection's summaries (kept in the manifest)."""
    return {k: props[k] for k in SUMMARY_FIELDS if props.get(k) is not None}


def summarise(values: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    listed: dict[str, set] = {}
    ranges: dict[str, list[float]] = {}
    for v in values:
        for k in LISTED:
            if k in v:
                items = v[k] if isinstance(v[k], list) else [v[k]]
                listed.setdefault(k, set()).update(items)
        for k in RANGED:
            if k in v:
                lo_hi = ranges.setdefault(k, [v[k], v[k]])
                lo_hi[0], lo_hi[1] = min(lo_hi[0], v[k]), max(lo_hi[1], v[k])
    out: dict[str, Any] = {k: sorted(s, key=str) for k, s in listed.items()}
    out.update({k: {"minimum": lo, "maximum": hi} for k, (lo, hi) in ranges.items()})
    return out


def extent(entries: Iterable[Mapping[str, Any]]) -> Doc:
    entries = list(entries)
    boxes = [e["bbox"] for e in entries if e.get("bbox")]
    bbox = ([min(b[0] for b in boxes), min(b[1] for b in boxes),
             max(b[2] for b in boxes), max(b[3] for b in boxes)]
            if boxes else [-180.0, -90.0, 180.0, 90.0])
    starts = [e["interval"][0] for e in entries if e.get("interval")]
    ends = [e["interval"][1] for e in entries if e.get("interval")]
    # Manifest times are normalised by the caller (format_datetime), so they sort as text.
    return {"spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[min(starts) if starts else None,
                                       max(ends) if ends else None]]}}
