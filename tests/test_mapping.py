"""Station entity → STAC item mapping, on the entity shapes real stations return
(station-interfaces.md §1), and its rejections of untrusted input."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest

from rspy_batch.errors import EntityRejected
from rspy_batch.ingest import ingest_merge
from rspy_batch.mapping import auxip, cadip, lta, prip
from rspy_batch.validation import validate_dict
from rspy_batch.windows import parse_when, split_windows

URL = "https://cadip.example.eu/odata/v1/"

SESSION = {
    "Id": "a5e9d3b8-7c4f-4a92-b76a-fa09e1e1b59c", "SessionId": "S1A_20200105072204051312",
    "NumChannels": 2, "PublicationDate": "2020-01-05T18:52:26.165Z", "Satellite": "S1A",
    "StationUnitId": "01", "DownlinkOrbit": 53186, "AcquisitionId": "53186_1",
    "AntennaId": "MSP21", "FrontEndId": "01", "Retransfer": False, "AntennaStatusOK": True,
    "FrontEndStatusOK": True, "PlannedDataStart": "2020-01-05T07:22:04.051Z",
    "PlannedDataStop": "2020-01-05T07:31:04.051Z", "DownlinkStart": "2020-01-05T07:22:04.051Z",
    "DownlinkStop": "2020-01-05T07:42:04.051Z", "DownlinkStatusOK": True,
    "DeliveryPushOK": True,
    "Files": [
        {"Id": "e4d17d2f-29eb-4c18-bc1f-bf2769a3a16d",
         "Name": "DCS_01_S1A_20200105072204051312_ch1_DSDB_00001.raw",
         "SessionId": "S1A_20200105072204051312", "Channel": 1, "BlockNumber": 1,
         "FinalBlock": True, "PublicationDate": "2020-01-05T18:52:29.165Z",
         "EvictionDate": "2020-01-05T18:52:29.165Z", "Size": "42", "Retransfer": False},
    ],
}

AUX = {
    "Id": "0a88d2a2-6e73-41a1-abce-2cdf29dfcf04",
    "Name": "S1A_OPER_MPL_ORBPRE_20210214T021411_20210221T021411_0001.EOF",
    "ContentType": "application/octet-stream", "ContentLength": "2100565",
    "OriginDate": "2024-04-12T15:16:47.000Z", "PublicationDate": "2021-02-14T00:00:00.000Z",
    "EvictionDate": "2021-02-21T00:00:00.000Z",
    "Checksum": [{"Algorithm": "MD5", "Value": "144921A67fc7EdE75e4818121fcf4d6C",
                  "ChecksumDate": "2021-02-14T00:00:00.000Z"}],
    "ContentDate": {"Start": "2021-02-21T00:00:00.000Z", "End": "2021-02-21T00:00:00.000Z"},
    "Attributes": [
        {"@odata.type": "#OData.CSC.StringAttribute", "Name": "platformShortName",
         "ValueType": "String", "Value": "SENTINEL-1"},
        {"@odata.type": "#OData.CSC.StringAttribute", "Name": "platformSerialIdentifier",
         "ValueType": "String", "Value": "A"},
        {"@odata.type": "#OData.CSC.StringAttribute", "Name": "productType",
         "ValueType": "String", "Value": "AUX_OBMEMC"},
        {"@odata.type": "#OData.CSC.DateTimeOffsetAttribute", "Name": "processingDate",
         "ValueType": "DateTimeOffset", "Value": "2021-02-21T00:00:00.000Z"}],
}

PRIP = {
    "Id": "06c91249-b275-4811-9a55-a8d11b534945",
    "Name": "S1A_IW_RAW__0SDV_20220626T050533_20220626T051038_043829_053B7F_203C.SAFE.zip",
    "EvictionDate": "9999-12-31T23:59:59.999Z", "ModificationDate": "2022-06-26T06:30:34.558Z",
    "OriginDate": "2022-06-26T06:14:55.468Z", "PublicationDate": "2022-06-26T06:30:34.558Z",
    "ContentLength": 47649797, "Online": True, "ContentType": "application/zip",
    "ContentDate": {"Start": "2022-06-26T05:05:33.863Z", "End": "2022-06-26T05:10:38.849Z"},
    "Checksum": [{"Algorithm": "MD5", "Value": "235f8cac56705aee78b4c8bbb45c7604",
                  "ChecksumDate": "2022-06-26T06:14:55.468Z"}],
    "GeoFootprint": {"type": "Polygon", "coordinates": [[[-59.3, 2.6], [-63.1, -14.0],
                                                         [-60.9, -14.5], [-57.0, 2.1],
                                                         [-59.3, 2.6]]]},
    "Attributes": [{"Name": "productType", "ValueType": "String", "Value": "IW_RAW__0S"},
                   {"Name": "orbitNumber", "ValueType": "Integer", "Value": 43829},
                   {"Name": "orbitDirection", "ValueType": "String", "Value": "DESCENDING"},
                   {"Name": "polarisationChannels", "ValueType": "String", "Value": "VV&VH"}],
}


def test_cadip_session_maps_to_valid_item() -> None:
    item = cadip.session_to_item(SESSION, station_id="mti", station_url=URL)
    assert item["id"] == "S1A_20200105072204051312"
    p = item["properties"]
    assert p["platform"] == "sentinel-1a" and p["constellation"] == "sentinel-1"
    assert p["externalIds"] == [{"scheme": "cadip", "value": SESSION["Id"]}]
    assert p["sat:absolute_orbit"] == 53186 and p["cadip:acquisition_id"] == "53186_1"
    asset = item["assets"]["DCS_01_S1A_20200105072204051312_ch1_DSDB_00001.raw"]
    assert asset["href"] == URL + "Files(e4d17d2f-29eb-4c18-bc1f-bf2769a3a16d)/$value"
    assert asset["file:size"] == 42 and asset["cadip:final_block"] is True
    assert asset["roles"] == ["cadu"]
    assert item["links"][0]["rel"] == "via"
    assert validate_dict(item) == []


def test_auxip_product_maps_to_valid_item() -> None:
    item = auxip.product_to_item(AUX, station_id="adgs", station_url=URL)
    assert item["id"] == "S1A_OPER_MPL_ORBPRE_20210214T021411_20210221T021411_0001"
    asset = item["assets"][AUX["Name"]]
    assert asset["file:size"] == 2100565
    assert asset["file:checksum"] == "d510" + "144921a67fc7ede75e4818121fcf4d6c"
    assert item["properties"]["product:type"] == "AUX_OBMEMC"
    assert item["properties"]["auxip:id"] == AUX["Id"]
    assert validate_dict(item) == []


def test_prip_and_lta_products_carry_footprint_and_mission_fields() -> None:
    item = prip.product_to_item(PRIP, station_id="s1a", station_url=URL)
    assert item["geometry"]["type"] == "Polygon"
    assert item["bbox"] == [-63.1, -14.5, -57.0, 2.6]
    p = item["properties"]
    assert p["sar:polarizations"] == ["VV", "VH"] and p["sat:orbit_state"] == "descending"
    assert p["processing:level"] == "L0" and p["sar:instrument_mode"] == "IW"
    assert validate_dict(item) == []
    entity = {k: v for k, v in PRIP.items() if k != "Attributes"}
    entity["Online"] = "true"
    lta_item = lta.product_to_item(entity, station_id="lta", station_url=URL)
    assert lta_item["properties"]["product:type"] == "IW_RAW__0S"
    assert lta_item["properties"]["sar:polarizations"] == ["VV", "VH"]
    assert validate_dict(lta_item) == []


@pytest.mark.parametrize("mutate, reason", [
    (lambda s: s.pop("DownlinkStart"), "missing field 'DownlinkStart'"),
    (lambda s: s.update(SessionId="../../etc"), "path separator"),
    (lambda s: s["Files"][0].update(Name="../x.raw"), "path separator"),
    (lambda s: s["Files"][0].update(Name="a\x07b.raw"), "control character"),
    (lambda s: s["Files"][0].update(Name="..raw"), "'..'"),
    (lambda s: s["Files"][0].update(Size="lots"), "not an integer"),
    (lambda s: s.update(DownlinkStart="yesterday"), "not a date"),
    (lambda s: s.update(Satellite="X9Z"), "unknown satellite"),
    (lambda s: s["Files"].append(dict(s["Files"][0])), "appears twice"),
])
def test_bad_cadip_sessions_are_rejected_with_reason(mutate, reason) -> None:
    session = copy.deepcopy(SESSION)
    mutate(session)
    with pytest.raises(EntityRejected, match=reason):
        cadip.session_to_item(session, station_id="mti", station_url=URL)


@pytest.mark.parametrize("mutate, reason", [
    (lambda p: p.pop("ContentLength"), "missing field 'ContentLength'"),
    (lambda p: p.update(Name="S1A_x/../y.EOF"), "path separator"),
    (lambda p: p["Checksum"][0].update(Value="zz"), "32 hex digits"),
    (lambda p: p.pop("ContentDate"), "missing field 'ContentDate/Start'"),
])
def test_bad_products_are_rejected_with_reason(mutate, reason) -> None:
    entity = copy.deepcopy(AUX)
    mutate(entity)
    with pytest.raises(EntityRejected, match=reason):
        auxip.product_to_item(entity, station_id="adgs", station_url=URL)


def test_reingest_keeps_staged_assets_and_added_links() -> None:
    fresh = auxip.product_to_item(AUX, station_id="adgs", station_url=URL)
    stored = copy.deepcopy(fresh)
    asset = stored["assets"][AUX["Name"]]
    asset["alternate"] = {"station": {"href": asset["href"]}}
    asset["href"] = "s3://bucket/staged/file.EOF"
    asset["rspy:staged"] = "2026-01-02T00:00:00.000Z"
    stored["links"].append({"rel": "derived_from", "href": "../other.json"})
    stored["properties"]["rspy:staged"] = "2026-01-01T00:00:00.000Z"
    merged = ingest_merge(stored, fresh)
    assert merged["assets"][AUX["Name"]]["href"] == "s3://bucket/staged/file.EOF"
    assert merged["properties"]["rspy:staged"] == "2026-01-01T00:00:00.000Z"
    assert {"rel": "derived_from", "href": "../other.json"} in merged["links"]
    assert ingest_merge(merged, fresh) == merged  # stable: a re-run changes nothing

    # The station now serves another file: the staged copy is stale, the asset reverts.
    changed = copy.deepcopy(fresh)
    changed["assets"][AUX["Name"]]["file:checksum"] = "d510" + "0" * 32
    reverted = ingest_merge(merged, changed)
    assert reverted["assets"][AUX["Name"]] == changed["assets"][AUX["Name"]]


def test_windows_are_aligned_and_clipped() -> None:
    wins = split_windows(parse_when("2026-01-03"), parse_when("2026-02-01"), 7)
    assert wins[0][0] == datetime(2026, 1, 3, tzinfo=UTC)
    assert wins[-1][1] == datetime(2026, 2, 1, tzinfo=UTC)
    assert all(a < b for a, b in wins) and len(wins) == 5
    # a second range overlapping the first shares its inner windows exactly
    other = split_windows(parse_when("2025-12-20"), parse_when("2026-01-20"), 7)
    assert set(wins[1:3]) <= set(other)


def test_s2_product_carries_cloud_cover_checked_by_eo_schema() -> None:
    entity = copy.deepcopy(PRIP)
    entity["Name"] = "S2B_MSIL1C_20260105T101309_N0511_R022_T32TQM_20260105T121212.SAFE.zip"
    entity["Attributes"] = [{"Name": "productType", "ValueType": "String", "Value": "S2MSI1C"},
                            {"Name": "cloudCover", "ValueType": "Double", "Value": 37.5}]
    item = prip.product_to_item(entity, station_id="s2b", station_url=URL)
    assert item["properties"]["eo:cloud_cover"] == 37.5
    assert item["properties"]["processing:level"] == "L1C"
    assert item["properties"]["instruments"] == ["msi"]
    assert validate_dict(item) == []
    item["properties"]["eo:cloud_cover"] = 150.0
    assert any("eo:cloud_cover" in e for e in validate_dict(item))
