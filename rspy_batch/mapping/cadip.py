"""CADIP session → STAC item (cadip-stac-extension v1.4.0): one item per downlink session,
one asset per DSDB chunk file, as RS-PYTHON's ``cadip_sessions_stac_mapper.json``."""

from __future__ import annotations

from typing import Any

from rspy_batch.errors import EntityRejected
from rspy_batch.mapping import extensions as ext
from rspy_batch.mapping.common import (
    drop_none,
    entity_label,
    iso,
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
    entity_id = str(require(session, "Id"))
    start = to_datetime(session, "DownlinkStart")
    stop = to_datetime(session, "DownlinkStop")
    platform_id, constellation = platform(str(require(session, "Satellite")), session)
    base = station_url if station_url.endswith("/") else station_url + "/"

    assets: dict[str, Any] = {}
    files = session.get("Files") or []
    if not isinstance(files, list):
        raise EntityRejected(session_id, "field 'Files' is not a list")
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
        "sat:absolute_orbit": to_int(session, "DownlinkOrbit") if session.get(
            "DownlinkOrbit") is not None else None,
        "externalIds": [{"scheme": "cadip", "value": entity_id}],
        "cadip:acquisition_id": require(session, "AcquisitionId"),
        "cadip:num_channels": session.get("NumChannels"),
        "cadip:station_id": session.get("StationId"),
        "cadip:station_unit_id": session.get("StationUnitId"),
        "cadip:antenna_id": session.get("AntennaId"),
        "cadip:front_end_id": session.get("FrontEndId"),
        "cadip:retransfer": session.get("Retransfer"),
        "cadip:antenna_status_ok": session.get("AntennaStatusOK"),
        "cadip:front_end_status_ok": session.get("FrontEndStatusOK"),
        "cadip:planned_data_start": optional_iso(session, "PlannedDataStart"),
        "cadip:planned_data_stop": optional_iso(session, "PlannedDataStop"),
        "cadip:downlink_status_ok": session.get("DownlinkStatusOK"),
        "cadip:delivery_push_ok": session.get("DeliveryPushOK"),
    })
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": list(EXTENSIONS),
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
    file_id = str(require(entry, "Id", owner=session))
    asset = drop_none({
        "href": f"{base}Files({file_id})/$value",
        "type": "application/octet-stream",
        "title": name,
        "roles": ["cadu"],
        "externalIds": [{"scheme": "cadip", "value": file_id}],
        "cadip:channel": to_int(entry, "Channel", owner=session),
        "cadip:block_number": to_int(entry, "BlockNumber", owner=session),
        "cadip:final_block": bool(entry.get("FinalBlock", False)),
        "cadip:retransfer": entry.get("Retransfer"),
        "created": optional_iso(entry, "PublicationDate"),
        "expires": optional_iso(entry, "EvictionDate"),
        "file:size": to_int(entry, "Size", owner=session),
    })
    return name, asset
