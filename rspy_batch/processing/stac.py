"""STAC for processed products (pure): the output item and the output collection.

The item starts from the product's embedded ``stac_discovery`` (which CPM writes for every
product) and keeps only fields whose extension schema ships with rspy-batch, so the
catalog validates offline; the full metadata stays in the product's ``.zattrs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.mapping import extensions as ext
from rspy_batch.mapping.common import declared_extensions, iso
from rspy_batch.processing.product import ZARR_MEDIA_TYPE
from rspy_batch.validation import extension_fields

#: Item properties kept from ``stac_discovery``: STAC core fields and the fields of the
#: extensions whose schema ships in ``rspy_batch/schemas``.
CORE_FIELDS = ("datetime", "start_datetime", "end_datetime", "created", "updated",
               "platform", "constellation", "instruments", "gsd", "title", "description")
KEPT_EO = ("eo:cloud_cover", "eo:snow_cover")
EXTENSIONS = [ext.SAT, ext.SAR, ext.EO, ext.PROCESSING, ext.PRODUCT]
FACILITY = "rspy-batch"


def software(processor_name: str, version: str) -> dict[str, str]:
    """``processing:software`` of a processor: how completeness recognises its outputs."""
    return {f"rspy-batch/{processor_name}": version}


def processing_properties(*, processor_name: str, version: str, level: str,
                          product_type: str, input_ids: Sequence[str],
                          when: datetime) -> dict[str, Any]:
    """The ``processing:*`` / ``product:type`` properties the runner stamps on a product."""
    return {
        "processing:level": level,
        "processing:software": software(processor_name, version),
        "processing:datetime": iso(when),
        "processing:facility": FACILITY,
        "processing:lineage": (f"{processor_name} {version} applied to "
                               + ", ".join(sorted(input_ids))),
        "product:type": product_type,
    }


#: Typical timeliness of Sentinel categories; the product extension requires
#: ``product:timeliness`` alongside ``product:timeliness_category``.
TIMELINESS = {"NRT": "PT3H", "NR": "PT3H", "NRT-3h": "PT3H", "24H": "PT24H", "STC": "PT48H",
              "ST": "PT48H", "NTC": "P1M", "NT": "P1M"}


PREFIX_SCHEMAS = {"sat:": ext.SAT, "sar:": ext.SAR, "processing:": ext.PROCESSING,
                  "product:": ext.PRODUCT}


def _allowed(key: str) -> bool:
    """Core fields, and extension fields the shipped schema of that extension defines
    (the sar and sat schemas refuse unknown ``sar:``/``sat:`` names)."""
    if key in CORE_FIELDS or key in KEPT_EO:
        return True
    for prefix, uri in PREFIX_SCHEMAS.items():
        if key.startswith(prefix):
            return key in extension_fields(uri, prefix)
    return False


def _kept(properties: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in properties.items() if _allowed(k)}
    category = kept.get("product:timeliness_category")
    if category is not None and "product:timeliness" not in kept:
        if category in TIMELINESS:
            kept["product:timeliness"] = TIMELINESS[category]
        else:
            del kept["product:timeliness_category"]
    return kept


def product_item(
    stac_discovery: Mapping[str, Any],
    *,
    item_key: str,
    product_href: str,
    variables: Mapping[str, str],
    thumbnail_href: str | None,
    inputs: Sequence[tuple[str, str]],
    title: str,
) -> dict[str, Any]:
    """The catalog item of a written product.

    ``inputs`` are ``(input item id, input item catalog key)``; each becomes a
    ``derived_from`` link relative to ``item_key``. ``variables`` maps asset keys to
    variable paths inside the product.
    """
    props = _kept(stac_discovery.get("properties") or {})
    if not props.get("datetime") and not props.get("start_datetime"):
        raise ValueError("stac_discovery.properties has neither datetime nor start_datetime")
    props.setdefault("datetime", props.get("start_datetime"))
    root = product_href.rstrip("/")
    assets: dict[str, Any] = {
        "product": {"href": root, "type": ZARR_MEDIA_TYPE, "roles": ["data"],
                    "title": f"{title} (EOPF Zarr product)"},
    }
    for key, path in variables.items():
        assets[key] = {"href": f"{root}/{path.strip('/')}", "type": ZARR_MEDIA_TYPE,
                       "roles": ["data"], "title": path.strip("/")}
    if thumbnail_href:
        assets["thumbnail"] = {"href": thumbnail_href, "type": "image/png",
                               "roles": ["thumbnail", "overview"], "title": "Quicklook"}
    links = [
        {"rel": "derived_from", "href": layout.relative_href(item_key, in_key),
         "type": "application/geo+json", "title": in_id}
        for in_id, in_key in sorted(inputs)
    ]
    geometry = stac_discovery.get("geometry")
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": declared_extensions(
            [e for e in EXTENSIONS if e != ext.EO or any(k in props for k in KEPT_EO)], props),
        "id": stac_discovery["id"],
        "geometry": geometry,
        "properties": props,
        "links": links,
        "assets": assets,
    }
    if geometry is not None and stac_discovery.get("bbox"):
        item["bbox"] = list(stac_discovery["bbox"])
    return item


def is_derived_from(item: Mapping[str, Any], *, processor_name: str, version: str,
                    input_ids: Sequence[str]) -> bool:
    """True when ``item`` is this processor version's output from exactly these inputs."""
    props = item.get("properties") or {}
    if props.get("processing:software") != software(processor_name, version):
        return False
    titles = {lk.get("title") for lk in item.get("links", []) if lk.get("rel") == "derived_from"}
    return titles == set(input_ids)


def output_collection(*, collection_id: str, input_collection: Mapping[str, Any],
                      processor_name: str, processor_title: str, version: str, level: str,
                      product_type: str, versioned: bool = False) -> dict[str, Any]:
    """The STAC collection for one processor's outputs from one input collection.

    ``versioned``: the collection is one version of a series (a reprocessing campaign's
    output), so it carries the version extension's ``version`` (the processor version).
    """
    source = input_collection.get("title") or input_collection.get("id")
    summaries = dict(input_collection.get("summaries") or {})
    summaries.update({"processing:level": [level], "product:type": [product_type]})
    doc: dict[str, Any] = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "stac_extensions": [ext.PROCESSING, ext.PRODUCT, *([ext.VERSION] if versioned else [])],
        "id": collection_id,
        "title": (f"{processor_title or processor_name} from {source}"
                  + (f" (version {version})" if versioned else "")),
        "description": (f"Products of the rspy-batch processor {processor_name} {version} "
                        f"run on the items of collection {input_collection.get('id')}."),
        "license": input_collection.get("license", "other"),
        "keywords": sorted({*input_collection.get("keywords", []), "eopf", "zarr",
                            processor_name}),
        "providers": [*input_collection.get("providers", []),
                      {"name": FACILITY, "roles": ["processor"]}],
        "summaries": summaries,
        "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                   "temporal": {"interval": [[None, None]]}},
        "links": [],
    }
    if versioned:
        doc["version"] = version
    return doc
