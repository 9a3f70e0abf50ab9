"""LTA product → STAC item. LTA entities carry no Attributes, so mission fields come from
the product name; the footprint is the geometry, as for PRIP."""

from __future__ import annotations

from typing import Any

from rspy_batch.mapping.common import drop_none, geometry_and_bbox, require
from rspy_batch.mapping.prip import mission_properties
from rspy_batch.mapping.product import product_item


def product_to_item(entity: dict[str, Any], *, station_id: str, station_url: str
                    ) -> dict[str, Any]:
    name = str(require(entity, "Name"))
    props, extensions = mission_properties(name, {}, entity)
    props["lta:online"] = str(entity.get("Online", "")).lower() == "true" \
        if entity.get("Online") is not None else None
    geometry, bbox = geometry_and_bbox(entity)
    return product_item(entity, station_id=station_id, station_url=station_url, service="lta",
                        extensions=extensions, properties=drop_none(props),
                        geometry=geometry, bbox=bbox)
