"""What AUXIP, PRIP and LTA products share: one item per product, one asset named after
the product file, pointing at the station's ``Products(<Id>)/$value``."""

from __future__ import annotations

from typing import Any

from rspy_batch.mapping.common import (
    declared_extensions,
    drop_none,
    guid,
    iso,
    item_id_from_name,
    md5_multihash,
    optional,
    optional_iso,
    safe_name,
    to_datetime,
    to_int,
    via_link,
)


def product_item(entity: dict[str, Any], *, station_id: str, station_url: str, service: str,
                 extensions: list[str], properties: dict[str, Any],
                 geometry: dict[str, Any] | None = None, bbox: list[float] | None = None,
                 roles: tuple[str, ...] = ("data",)) -> dict[str, Any]:
    """The item skeleton; ``properties`` adds the service-specific fields."""
    name = safe_name(entity, "Name")
    entity_id = guid(entity)
    start = to_datetime(entity, "ContentDate/Start")
    end = to_datetime(entity, "ContentDate/End")
    base = station_url if station_url.endswith("/") else station_url + "/"
    asset = drop_none({
        "href": f"{base}Products({entity_id})/$value",
        "type": optional(entity, "ContentType", str) or "application/octet-stream",
        "title": name,
        "roles": list(roles),
        "file:size": to_int(entity, "ContentLength", minimum=0),
        "file:checksum": md5_multihash(entity),
        "expires": optional_iso(entity, "EvictionDate"),
    })
    props = drop_none({
        "datetime": iso(start),
        "start_datetime": iso(start),
        "end_datetime": iso(max(start, end)),
        "published": iso(to_datetime(entity, "PublicationDate")),
        "created": optional_iso(entity, "OriginDate"),
        "updated": optional_iso(entity, "ModificationDate"),
        f"{service}:id": entity_id,
        **properties,
    })
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": declared_extensions(extensions, props),
        "id": item_id_from_name(name),
        "geometry": geometry,
        "properties": props,
        "links": [via_link(f"{base}Products({entity_id})",
                           f"{service.upper()} product {name} at station {station_id}")],
        "assets": {name: asset},
    }
    if bbox is not None:
        item["bbox"] = bbox
    return item
