"""CADIP session → STAC item (cadip-stac-extension v1.4.0): one item per downlink session,
one asset per DSDB chunk file, as RS-PYTHON's ``cadip_sessions_stac_mapper.json``."""

from __future__ import annotations

from typing import Any

from rspy_batch.errors import EntityRejected
from rspy_batch.mapping import extensions as ext
from rspy_batch.mapping.common import (
    drop_none,
    entity_label,
    guid,
    iso,
    optional,
    optional_iso,
    platform,
    require,
    safe_name,
    to_datetime,
    to_int,
    via_link,
)

EXTENSIONS = [ext.CADIP, ext.EXTERNAL_IDS, ext.FILE, ext.TIMESTAMPS, ext.SAT]


def session_to_item(session: dict[str, Any], *, station_id: str, station_url: str
                    ) -> dict[str, Any]:
    """Map one CADIP ``Session`` (with ``Files`` expanded) to a STAC item dict."""
    session_id = safe_name(session, "SessionId")
    entity_id = guid(session)
    start = to_datetime(session, "DownlinkStart")
    stop = to_datetime(session, "DownlinkStop")
    platform_id, constellation = platform(str(require(session, "Satellite")), session)
    base = station_url if station_url.endswith("/") else station_url + "/"

    assets: dict[str, Any] = {}
    files = session.get("Files") or []
    if not isinstance(files, list):
        raise EntityRejected(session_id, "field 'Files' is not a list")
    if not all(isinstance(f, dict) for f in files):  # before sorting reads them
        raise EntityRejected(session_id, "a file entry is not an object")
    for entry in sorted(files, key=lambda f: (str(f.get("Channel")), str(f.get("BlockNumber")))):
        asset_key, asset = _file_asset(entry, session, base)
        if asset_key in assets:
            raise EntityRejected(session_id, f"file name {asset_key!r} appears twice")
        assets[asset_key] = asset

    properties = drop_none({
        "datetime": iso(start),
        "start_datetime": iso(start),
        "end_datetime": iso(stop),
        "published": iso(to_datetime(session, "PublicationDate")),
        "platform": platform_id,
        "constellation": constellation,
        "sat:absolute_orbit": to_int(session, "DownlinkOrbit", minimum=1) if session.get(
            "DownlinkOrbit") is not None else None,
        "externalIds": [{"scheme": "cadip", "value": entity_id}],
        "cadip:acquisition_id": _acquisition_id(session),
        "cadip:num_channels": to_int(session, "NumChannels", minimum=1, maximum=4)
        if session.get("NumChannels") is not None else None,
        "cadip:station_id": _fixed_length(session, "StationId", 4),
        "cadip:station_unit_id": _fixed_length(session, "StationUnitId", 2),
        "cadip:antenna_id": optional(session, "AntennaId", str),
        "cadip:front_end_id": optional(session, "FrontEndId", str),
        "cadip:retransfer": optional(session, "Retransfer", bool),
        "cadip:antenna_status_ok": optional(session, "AntennaStatusOK", bool),
        "cadip:front_end_status_ok": optional(session, "FrontEndStatusOK", bool),
        "cadip:planned_data_start": optional_iso(session, "PlannedDataStart"),
        "cadip:planned_data_stop": optional_iso(session, "PlannedDataStop"),
        "cadip:downlink_status_ok": optional(session, "DownlinkStatusOK", bool),
        "cadip:delivery_push_ok": optional(session, "DeliveryPushOK", bool),
    })
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        # sat's schema wants one sat: field: without an orbit the extension is not declared.
        "stac_extensions": [u for u in EXTENSIONS
                            if u != ext.SAT or "sat:absolute_orbit" in properties],
        "id": session_id,
        "geometry": None,
        "properties": properties,
        "links": [via_link(f"{base}Sessions({entity_id})",
                           f"CADIP session {session_id} at station {station_id}")],
        "assets": assets,
    }


def _file_asset(entry: Any, session: dict[str, Any], base: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, dict):
        raise EntityRejected(entity_label(session), "a file entry is not an object")
    name = safe_name(entry, "Name", owner=session)
    file_id = guid(entry, owner=session)
    asset = drop_none({
        "href": f"{base}Files({file_id})/$value",
        "type": "application/octet-stream",
        "title": name,
        "roles": ["cadu"],
        "externalIds": [{"scheme": "cadip", "value": file_id}],
        "cadip:channel": to_int(entry, "Channel", owner=session, minimum=1, maximum=4),
        "cadip:block_number": to_int(entry, "BlockNumber", owner=session, minimum=1),
        # Not bool(): the string "false" is truthy.
        "cadip:final_block": optional(entry, "FinalBlock", bool, owner=session) or False,
        "cadip:retransfer": optional(entry, "Retransfer", bool, owner=session),
        "created": optional_iso(entry, "PublicationDate"),
        "expires": optional_iso(entry, "EvictionDate"),
        "file:size": to_int(entry, "Size", owner=session, minimum=0),
    })
    return name, asset


def _acquisition_id(session: dict[str, Any]) -> str | int:
    value = require(session, "AcquisitionId")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise EntityRejected(entity_label(session),
                             f"field 'AcquisitionId' is not a string or integer: {value!r:.40}")
    return value


def _fixed_length(session: dict[str, Any], field: str, length: int) -> str | None:
    """A code the cadip extension fixes the length of (StationId ``INS_``, unit ``01``)."""
    value = optional(session, field, str)
    if value is not None and len(value) != length:
        raise EntityRejected(entity_label(session),
                             f"field {field!r} is not {length} characters: {value[:40]!r}")
    return value
