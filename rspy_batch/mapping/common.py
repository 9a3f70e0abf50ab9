"""Field access and conversions shared by the station mappers.

Station JSON is untrusted: every access goes through :func:`require` and the converters
here, which raise :class:`~rspy_batch.errors.EntityRejected` naming the entity and the
field, so one bad entity is recorded and the rest of the run goes on.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from rspy_batch.catalog import layout
from rspy_batch.errors import EntityRejected

# Satellite code → (platform, constellation), as RS-PYTHON's constellation.yaml.
PLATFORMS = {
    "S1A": ("sentinel-1a", "sentinel-1"), "S1B": ("sentinel-1b", "sentinel-1"),
    "S1C": ("sentinel-1c", "sentinel-1"), "S1D": ("sentinel-1d", "sentinel-1"),
    "S2A": ("sentinel-2a", "sentinel-2"), "S2B": ("sentinel-2b", "sentinel-2"),
    "S2C": ("sentinel-2c", "sentinel-2"), "S3A": ("sentinel-3a", "sentinel-3"),
    "S3B": ("sentinel-3b", "sentinel-3"), "S5P": ("sentinel-5p", "sentinel-5p"),
}
_KNOWN_SUFFIXES = (".SAFE.zip", ".SEN3.zip", ".zarr.zip", ".tar.gz", ".zip", ".EOF", ".TGZ",
                   ".tgz", ".xml", ".raw", ".zarr", ".SAFE")
_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MD5_MULTIHASH_PREFIX = "d510"  # multihash code 0xd5 (md5), digest length 0x10


def entity_label(entity: dict[str, Any]) -> str:
    for key in ("SessionId", "Name", "Id"):
        value = entity.get(key)
        if isinstance(value, str) and value:
            return value
    return "<entity without Id or Name>"


def require(entity: dict[str, Any], field: str, owner: dict[str, Any] | None = None) -> Any:
    """``entity[field]`` (``a/b`` for nested), or reject ``owner`` (default: entity)."""
    value: Any = entity
    for part in field.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None or value == "":
        raise EntityRejected(entity_label(owner or entity), f"missing field {field!r}")
    return value


def to_datetime(entity: dict[str, Any], field: str, owner: dict[str, Any] | None = None
                ) -> datetime:
    value = require(entity, field, owner)
    try:
        # In UTC here, so that a date at the edge of datetime's range (0001-01-01T00:00+01:00)
        # is rejected now rather than overflowing when the item is written out.
        return layout.parse_datetime(str(value)).astimezone(UTC)
    except (ValueError, OverflowError):
        raise EntityRejected(entity_label(owner or entity),
                             f"field {field!r} is not a date: {str(value)[:40]!r}") from None


def iso(dt: datetime) -> str:
    return layout.format_datetime(dt)


def optional_iso(entity: dict[str, Any], field: str) -> str | None:
    return iso(to_datetime(entity, field)) if entity.get(field) else None


def to_int(entity: dict[str, Any], field: str, owner: dict[str, Any] | None = None, *,
           minimum: int | None = None, maximum: int | None = None) -> int:
    value = require(entity, field, owner)
    label = entity_label(owner or entity)
    try:
        if isinstance(value, bool):  # int(True) is 1, but a JSON true is no count
            raise TypeError
        number = int(value)  # CADIP Size / AUXIP ContentLength come as strings
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        raise EntityRejected(label,
                             f"field {field!r} is not an integer: {str(value)[:40]!r}") from None
    if isinstance(value, float) and value != number:
        raise EntityRejected(label, f"field {field!r} is not an integer")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise EntityRejected(label, f"field {field!r} is {number}, outside "
                             f"[{minimum}, {'' if maximum is None else maximum}]")
    return number


def optional(entity: dict[str, Any], field: str, kind: type | tuple[type, ...],
             owner: dict[str, Any] | None = None) -> Any:
    """``entity[field]`` if it is a ``kind`` (a bool is never a number here), None when
    absent or null; any other value rejects the entity: it would make an invalid item."""
    value = entity.get(field)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
        return value
    names = " or ".join(k.__name__ for k in kinds)
    raise EntityRejected(entity_label(owner or entity),
                         f"field {field!r} is not a {names}: {str(value)[:40]!r}")


def text_or_none(value: Any) -> str | None:
    """A non-empty string, else None: optional Attributes of the wrong kind are left out."""
    return value if isinstance(value, str) and value else None


def guid(entity: dict[str, Any], field: str = "Id", owner: dict[str, Any] | None = None) -> str:
    """An entity Id: OData GUID text, kept as the station wrote it. It goes verbatim into
    the download URL (``Products(<Id>)/$value``), so anything else could point elsewhere."""
    value = require(entity, field, owner)
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise EntityRejected(entity_label(owner or entity),
                             f"field {field!r} is not a GUID: {str(value)[:40]!r}")
    return value


def safe_name(entity: dict[str, Any], field: str = "Name",
              owner: dict[str, Any] | None = None) -> str:
    """A station file name we are willing to use as a folder or asset name."""
    name = require(entity, field, owner)
    reason = layout.unsafe_id_reason(name) if isinstance(name, str) else "name is not a string"
    if reason:
        raise EntityRejected(entity_label(owner or entity), f"unsafe {field}: {reason}")
    return name


def item_id_from_name(name: str) -> str:
    for suffix in _KNOWN_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def md5_multihash(entity: dict[str, Any]) -> str | None:
    """The station's MD5 as a ``file:checksum`` multihash, None when it gives none."""
    checksums = entity.get("Checksum") or []
    if not isinstance(checksums, list):
        raise EntityRejected(entity_label(entity), "field 'Checksum' is not a list")
    for entry in checksums:
        if isinstance(entry, dict) and str(entry.get("Algorithm", "")).upper() == "MD5":
            value = str(entry.get("Value", ""))
            if not _MD5.fullmatch(value):  # not match: "$" would let a trailing newline in
                raise EntityRejected(entity_label(entity), f"MD5 checksum {value[:40]!r} is not "
                                     "32 hex digits")
            return MD5_MULTIHASH_PREFIX + value.lower()
    return None


def platform(code: str, entity: dict[str, Any]) -> tuple[str, str]:
    try:
        return PLATFORMS[code.upper()]
    except (KeyError, AttributeError):
        raise EntityRejected(entity_label(entity), f"unknown satellite {code!r}") from None


def attributes(entity: dict[str, Any]) -> dict[str, Any]:
    """OData ``Attributes`` as ``{Name: Value}`` (empty when not expanded)."""
    out: dict[str, Any] = {}
    raw = entity.get("Attributes") or []
    if not isinstance(raw, list):
        raise EntityRejected(entity_label(entity), "field 'Attributes' is not a list")
    for attr in raw:
        if isinstance(attr, dict) and isinstance(attr.get("Name"), str):
            out[attr["Name"]] = attr.get("Value")
    return out


def declared_extensions(extensions: list[str], properties: dict[str, Any]) -> list[str]:
    """``extensions`` without the field-prefixed ones no property uses: their schemas
    require at least one of their fields, and declaring an unused one is an error."""
    from rspy_batch.mapping import extensions as ext

    prefixes = {ext.SAT: "sat:", ext.SAR: "sar:", ext.PROCESSING: "processing:",
                ext.PRODUCT: "product:"}
    kept = []
    for uri in dict.fromkeys(extensions):
        prefix = prefixes.get(uri)
        if prefix is None or any(key.startswith(prefix) for key in properties):
            kept.append(uri)
    return sorted(kept)


def via_link(href: str, title: str) -> dict[str, Any]:
    return {"rel": "via", "href": href, "type": "application/json", "title": title}


def drop_none(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}


def geometry_and_bbox(entity: dict[str, Any]) -> tuple[dict[str, Any] | None, list[float] | None]:
    """GeoFootprint as (geometry, bbox); (None, None) when the station gives none."""
    from shapely.geometry import mapping, shape

    geo = entity.get("GeoFootprint")
    if geo is None:
        return None, None
    try:
        geom = shape(geo)
    except Exception as exc:  # shapely raises several types for malformed GeoJSON
        raise EntityRejected(entity_label(entity), f"GeoFootprint is not GeoJSON: {exc}") from None
    if geom.is_empty:
        return None, None
    # Keep the station's own GeoJSON (plain lists), shapely only checks it and bounds it.
    # shapely is lenient (string coordinates, "polygon", unclosed rings, NaN): the
    # station's text must be what shapely read back, in plain numbers, or it is no GeoJSON.
    if not _same_geojson(geo, mapping(geom)) or not _enough_positions(geo):
        raise EntityRejected(entity_label(entity), "GeoFootprint is not plain GeoJSON")
    return geo, [float(v) for v in geom.bounds]


# GeoJSON's least positions per nesting level (rings 4, lines 2); shapely reads an empty
# hole or an empty member without complaint, GeoJSON does not.
_LEAST_POSITIONS = {"Point": (), "MultiPoint": (0,), "LineString": (2,),
                    "MultiLineString": (0, 2), "Polygon": (0, 4), "MultiPolygon": (0, 0, 4)}


def _enough_positions(geo: dict[str, Any]) -> bool:
    if geo["type"] == "GeometryCollection":
        return all(_enough_positions(g) for g in geo["geometries"])

    def ok(coords: list[Any], least: tuple[int, ...]) -> bool:
        return not least or (len(coords) >= least[0] and all(ok(c, least[1:]) for c in coords))

    return ok(geo["coordinates"], _LEAST_POSITIONS[geo["type"]])


def _same_geojson(station: Any, parsed: Any) -> bool:
    if isinstance(parsed, float):
        return (isinstance(station, int | float) and not isinstance(station, bool)
                and math.isfinite(station) and station == parsed)
    if isinstance(parsed, list | tuple):
        return (isinstance(station, list) and len(station) == len(parsed)
                and all(_same_geojson(s, p) for s, p in zip(station, parsed, strict=True)))
    if isinstance(parsed, dict):
        return (isinstance(station, dict) and station.keys() == parsed.keys()
                and all(_same_geojson(station[k], parsed[k]) for k in parsed))
    return type(station) is type(parsed) and station == parsed
