"""AUXIP product → STAC item (auxip-stac-extension v1.1.0), as RS-PYTHON's
``adgs_stac_mapper.json``: auxiliary files have no footprint."""

from __future__ import annotations

from typing import Any

from rspy_batch.mapping import extensions as ext
from rspy_batch.mapping.common import (
    attributes,
    drop_none,
    iso,
    platform,
    text_or_none,
    to_datetime,
)
from rspy_batch.mapping.product import product_item

EXTENSIONS = [ext.AUXIP, ext.FILE, ext.TIMESTAMPS, ext.PROCESSING, ext.PRODUCT]


def product_to_item(entity: dict[str, Any], *, station_id: str, station_url: str
                    ) -> dict[str, Any]:
    attrs = attributes(entity)
    props: dict[str, Any] = {
        "product:type": text_or_none(attrs.get("productType")),
        "processing:facility": text_or_none(attrs.get("processingCenter")),
        "processing:version": _str_or_none(attrs.get("processorVersion")),
    }
    if attrs.get("processingDate"):
        props["processing:datetime"] = iso(to_datetime(attrs, "processingDate", owner=entity))
    short, serial = attrs.get("platformShortName"), attrs.get("platformSerialIdentifier")
    if short and serial:
        code = str(short).replace("SENTINEL-", "S") + str(serial)
        props["platform"], props["constellation"] = platform(code, entity)
    elif short:
        props["constellation"] = str(short).lower()
    return product_item(entity, station_id=station_id, station_url=station_url, service="auxip",
                        extensions=EXTENSIONS, properties=drop_none(props),
                        roles=("auxiliary", "data"))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
