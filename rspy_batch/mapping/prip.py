"""PRIP product → STAC item: Level-0/1/2 products with their footprint as geometry and the
sat / sar / eo / processing / product fields RS-PYTHON's ``prip_stac_mapper.json`` maps."""

from __future__ import annotations

import math
from typing import Any

from rspy_batch.mapping import extensions as ext
from rspy_batch.mapping.common import (
    attributes,
    drop_none,
    geometry_and_bbox,
    iso,
    platform,
    require,
    text_or_none,
    to_datetime,
)
from rspy_batch.mapping.product import product_item


def product_to_item(entity: dict[str, Any], *, station_id: str, station_url: str
                    ) -> dict[str, Any]:
    attrs = attributes(entity)
    name = str(require(entity, "Name"))
    props, extensions = mission_properties(name, attrs, entity)
    if attrs.get("processingDate"):
        props["processing:datetime"] = iso(to_datetime(attrs, "processingDate", owner=entity))
    if entity.get("ProductionType"):
        props["processing:lineage"] = str(entity["ProductionType"])
    geometry, bbox = geometry_and_bbox(entity)
    return product_item(entity, station_id=station_id, station_url=station_url, service="prip",
                        extensions=extensions, properties=drop_none(props),
                        geometry=geometry, bbox=bbox)


def mission_properties(name: str, attrs: dict[str, Any], entity: dict[str, Any]
                       ) -> tuple[dict[str, Any], list[str]]:
    """Fields derived from the product name (always there) and Attributes (PRIP only)."""
    code = name[:3]
    platform_id, constellation = platform(code, entity)
    # Attributes are optional extras: a value of the wrong kind is left out, not trusted.
    product_type = text_or_none(attrs.get("productType")) or _product_type_from_name(name)
    props: dict[str, Any] = {
        "platform": platform_id,
        "constellation": constellation,
        "product:type": product_type,
        "processing:level": processing_level(product_type),
        "processing:facility": text_or_none(attrs.get("processingCenter")),
        "processing:version": _str(attrs.get("processorVersion")),
        "sat:absolute_orbit": _orbit(attrs.get("orbitNumber")),
        "sat:relative_orbit": _orbit(attrs.get("relativeOrbitNumber")),
        "sat:orbit_state": _ORBIT_STATES.get(str(attrs.get("orbitDirection")).lower()),
    }
    extensions = [ext.FILE, ext.TIMESTAMPS, ext.PROCESSING, ext.PRODUCT, ext.SAT]
    if constellation == "sentinel-1":
        props["instruments"] = ["sar"]
        pols = polarizations(attrs.get("polarisationChannels"), name)
        if pols and product_type:  # what the sar schema requires, else no sar fields
            props["sar:instrument_mode"] = name[4:6]
            props["sar:frequency_band"] = "C"
            props["sar:center_frequency"] = 5.405
            props["sar:product_type"] = product_type[3:6].rstrip("_")
            props["sar:polarizations"] = pols
            extensions.append(ext.SAR)
    elif constellation == "sentinel-2":
        props["instruments"] = ["msi"]
        cloud = _percent(attrs.get("cloudCover"))
        if cloud is not None:
            props["eo:cloud_cover"] = cloud
            extensions.append(ext.EO)
    elif constellation == "sentinel-3" and product_type:
        instrument = _S3_INSTRUMENTS.get(product_type[:2])
        props["instruments"] = [instrument] if instrument else None
    return props, extensions


# Sentinel-3 product types start with the instrument: OL_1_EFR___, SL_2_LST___, SR_2_LAN___
_S3_INSTRUMENTS = {"OL": "olci", "SL": "slstr", "SR": "sral", "MW": "mwr", "SY": "synergy"}


def processing_level(product_type: str | None) -> str | None:
    if not product_type:
        return None
    if "_0" in product_type or product_type.endswith("0S") or product_type.endswith("0N"):
        return "L0"
    for level in ("L1C", "L2A", "L1B", "L1A"):
        if level in product_type or product_type.endswith(level[1:]):
            return level
    if "_1" in product_type:
        return "L1"
    if "_2" in product_type:
        return "L2"
    return None


def polarizations(channels: Any, name: str) -> list[str] | None:
    if channels:
        found = str(channels).upper().replace("&", " ").replace(",", " ").split()
    else:
        # S1 names carry it: ..._0SDV_ → dual VV+VH, SH → single HH, etc.
        code = name[14:16] if len(name) > 16 else ""
        found = {"DV": ["VV", "VH"], "DH": ["HH", "HV"], "SV": ["VV"], "SH": ["HH"]}.get(code, [])
    # The sar schema takes only these four, each once, and at least one.
    return list(dict.fromkeys(p for p in found if p in _POLARIZATIONS)) or None


_POLARIZATIONS = ("HH", "VV", "HV", "VH")
_ORBIT_STATES = {"ascending": "ascending", "descending": "descending",
                 "geostationary": "geostationary"}


def _product_type_from_name(name: str) -> str | None:
    if name.startswith("S1") and len(name) > 14:
        return name[4:14]
    if name.startswith("S2") and name[4:8] == "MSIL" and len(name) > 10:
        return "S2MSI" + name[8:10]  # S2B_MSIL1C_... is productType S2MSI1C
    if name.startswith("S2") and len(name) > 10:
        return "S2" + name[4:10]
    if name.startswith("S3") and len(name) > 15:
        return name[4:15]  # S3A_OL_1_EFR____... is productType OL_1_EFR___
    return None


def _orbit(value: Any) -> int | None:
    """An orbit number (sat: integers from 1), None for anything else."""
    if isinstance(value, bool):
        return None
    try:
        number = None if value is None else int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if number is None or number < 1 or (isinstance(value, float) and value != number):
        return None
    return number


def _percent(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and 0 <= number <= 100 else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
