"""Offline STAC validation: vendored extension schemas, readable errors, no network."""

from __future__ import annotations

import copy
import json
import socket
from importlib.resources import files
from typing import Any

import pystac
import pytest

from rspy_batch.errors import RspyError
from rspy_batch.validation import (
    SchemaNotShipped,
    offline_validator,
    shipped_schemas,
    validate_dict,
)

EXT = "https://stac-extensions.github.io"
CADIP = "https://home.rs-python.eu/cadip-stac-extension/v1.4.0/schema.json"
AUXIP = "https://home.rs-python.eu/auxip-stac-extension/v1.1.0/schema.json"
OWNERSHIP = "https://home.rs-python.eu/ownership-stac-extension/v1.1.0/schema.json"
FILE = f"{EXT}/file/v2.1.0/schema.json"
TIMESTAMPS = f"{EXT}/timestamps/v1.1.0/schema.json"
EXTERNAL_IDS = f"{EXT}/external-ids/v1.0.0/schema.json"
SAT = f"{EXT}/sat/v1.0.0/schema.json"
SAR = f"{EXT}/sar/v1.0.0/schema.json"
PROCESSING = f"{EXT}/processing/v1.1.0/schema.json"
PRODUCT = f"{EXT}/product/v0.1.0/schema.json"
ASSET = "DCS_04_S1A_20241114143038056552_ch2_DSDB_00001.raw"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("validation tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def cadip_session_item() -> dict[str, Any]:
    # Shaped like cadip-stac-extension/examples/item.json (reference section 2.1), trimmed to
    # one asset, plus sat/sar/processing/product fields as a session item could carry.
    file_id = "228b97bc-aa04-4036-8450-3106bc7684bb"
    return {
        "stac_version": "1.1.0",
        "stac_extensions": [
            CADIP,
            EXTERNAL_IDS,
            FILE,
            TIMESTAMPS,
            SAT,
            SAR,
            PROCESSING,
            PRODUCT,
        ],
        "type": "Feature",
        "id": "S1A_20241114143038056552",
        "collection": "s1_mti",
        "geometry": None,
        "links": [
            {"rel": "collection", "href": "./collection.json", "type": "application/json"},
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
        ],
        "properties": {
            "datetime": "2024-11-14T14:31:11.032Z",
            "start_datetime": "2024-11-14T14:30:44.018Z",
            "end_datetime": "2024-11-14T14:33:48.812Z",
            "platform": "sentinel-1a",
            "constellation": "sentinel-1",
            "published": "2024-11-14T14:31:11.032Z",
            "externalIds": [{"scheme": "cadip", "value": "6894eb36-416e-469e-8788-9a0a2b8f3a8d"}],
            "cadip:num_channels": 2,
            "cadip:station_unit_id": "04",
            "cadip:acquisition_id": "565521",
            "cadip:antenna_id": "TLR3",
            "cadip:front_end_id": "DEM-KSPT-SENT-DFEP4",
            "cadip:retransfer": False,
            "cadip:antenna_status_ok": True,
            "cadip:front_end_status_ok": True,
            "cadip:planned_data_start": "2024-11-14T14:30:38.477Z",
            "cadip:planned_data_stop": "2024-11-14T14:33:22.662Z",
            "cadip:downlink_status_ok": True,
            "cadip:delivery_push_ok": True,
            "sat:absolute_orbit": 56552,
            "sat:orbit_state": "descending",
            "sar:instrument_mode": "IW",
            "sar:frequency_band": "C",
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "RAW",
            "processing:level": "RAW",
            "processing:facility": "MTI",
            "product:type": "SESSION",
        },
        "assets": {
            ASSET: {
                "href": f"https://cadip.example.com/cadip/1.0/odata/v1/Files({file_id})/$value",
                "title": ASSET,
                "roles": ["cadu"],
                "externalIds": [{"scheme": "cadip", "value": file_id}],
                "cadip:retransfer": False,
                "cadip:final_block": False,
                "cadip:block_number": 1,
                "cadip:channel": 2,
                "created": "2024-11-14T14:31:26.576Z",
                "eviction_datetime": "2024-11-21T14:30:00Z",
                "file:size": 314571600,
            }
        },
    }


def auxip_item() -> dict[str, Any]:
    # Per auxip-stac-extension/examples/item.json (reference section 2.2).
    name = "S1A_AUX_PP1_V20140616T133500_G20241125T133808"
    return {
        "stac_version": "1.1.0",
        "stac_extensions": [
            AUXIP,
            FILE,
            TIMESTAMPS,
            PROCESSING,
            f"{EXT}/product/v1.0.0/schema.json",
        ],
        "type": "Feature",
        "id": name,
        "collection": "S1-AUX_PP1",
        "geometry": None,
        # Core STAC requires a rel=collection link whenever "collection" is set.
        "links": [{"rel": "collection", "href": "./collection.json"}],
        "properties": {
            "datetime": "2014-06-16T13:35:00Z",
            "start_datetime": "2014-06-16T13:35:00Z",
            "end_datetime": "2100-01-01T00:00:00Z",
            "created": "2024-11-25T13:38:08Z",
            "published": "2024-11-25T13:42:58Z",
            "platform": "sentinel-1a",
            "constellation": "sentinel-1",
            "auxip:id": "2e25ea88-ab33-11ef-8630-fa163e75e309",
            "product:type": "AUX_PP1",
            # No processing:datetime: it arrived in processing v1.2.0, which is not vendored.
            "processing:facility": "CLS-Brest",
        },
        "assets": {
            f"{name}.SAFE.zip": {
                "href": "https://auxip.copernicus.eu/odata/v1/Products(2e25ea88-ab33-11ef-8630-fa163e75e309)/$value",
                "type": "application/octet-stream",
                "file:size": 30891,
                "file:checksum": "7866557ed8cbeac83225459eb3bd7438",
                "eviction_datetime": "2027-08-22T13:42:58.405000Z",
            }
        },
    }


def collection() -> dict[str, Any]:
    coll = pystac.Collection(
        id="alice_s1_mti",
        description="CADIP sessions from Matera",
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
            pystac.TemporalExtent([[None, None]]),
        ),
        license="other",
    )
    coll.stac_extensions = [OWNERSHIP, TIMESTAMPS]
    coll.extra_fields["owner"] = "alice"
    coll.extra_fields["published"] = "2024-11-14T14:31:11Z"
    data = coll.to_dict(include_self_link=False)
    data["links"] = [{"rel": "item", "href": "./S1A_20241114143038056552.json"}]
    return data


def catalog() -> dict[str, Any]:
    cat = pystac.Catalog(id="rspy", description="rspy-batch static catalog")
    cat.stac_extensions = [FILE]
    data = cat.to_dict(include_self_link=False)
    data["links"] = [{"rel": "child", "href": "./s1_mti/collection.json", "file:size": 1024}]
    return data


@pytest.mark.parametrize("factory", [cadip_session_item, auxip_item, collection, catalog])
def test_valid_objects_pass_offline(factory: Any) -> None:
    assert validate_dict(factory()) == []


def test_pystac_helper_accepts_the_offline_validator() -> None:
    uris = pystac.validation.validate_dict(cadip_session_item(), validator=offline_validator())
    assert CADIP in uris and FILE in uris


def test_wrong_type_for_file_size_is_named() -> None:
    item = cadip_session_item()
    item["assets"][ASSET]["file:size"] = "314571600"
    (error,) = validate_dict(item)
    assert error.startswith("S1A_20241114143038056552: " + FILE)
    assert f"$.assets['{ASSET}']['file:size']" in error
    assert "not of type 'integer'" in error


def test_missing_required_cadip_fields_are_named() -> None:
    item = cadip_session_item()
    del item["assets"][ASSET]["cadip:block_number"]
    del item["properties"]["cadip:acquisition_id"]
    errors = validate_dict(item)
    assert all(CADIP in e for e in errors)
    assert any("$.properties" in e and "'cadip:acquisition_id' is a required" in e for e in errors)
    assert any(
        f"$.assets['{ASSET}']" in e and "'cadip:block_number' is a required" in e for e in errors
    )


def test_missing_auxip_id_is_named() -> None:
    item = auxip_item()
    del item["properties"]["auxip:id"]
    (error,) = validate_dict(item)
    assert AUXIP in error and "'auxip:id' is a required property" in error


@pytest.mark.parametrize(
    ("field", "value"),
    [("datetime", "2024-13-45T10:00:00Z"), ("datetime", "yesterday"), ("published", "2024-11-14")],
)
def test_bad_datetime_is_named(field: str, value: str) -> None:
    item = cadip_session_item()
    item["properties"][field] = value
    errors = validate_dict(item)
    assert errors
    assert all(f"$.properties.{field}" in e for e in errors)


def test_bad_uuid_in_external_ids_is_named() -> None:
    item = cadip_session_item()
    item["properties"]["externalIds"][0]["value"] = "not-a-uuid"
    errors = validate_dict(item)
    assert any("$.properties.externalIds[0].value" in e and "uuid" in e for e in errors)


def test_unknown_extension_is_reported_not_fetched() -> None:
    item = cadip_session_item()
    unknown = "https://example.com/mystery/v9.9.9/schema.json"
    item["stac_extensions"].append(unknown)
    (error,) = validate_dict(item)
    assert unknown in error and "not shipped with rspy-batch" in error


def test_unknown_core_version_is_reported() -> None:
    cat = catalog()
    cat["stac_version"] = "1.0.0"
    (error,) = validate_dict(cat)
    assert "v1.0.0/catalog-spec" in error and "not shipped" in error


def test_collection_without_owner_fails_ownership() -> None:
    coll = collection()
    del coll["owner"]
    errors = validate_dict(coll)
    assert errors and all(OWNERSHIP in e for e in errors)


def test_validator_raises_schema_not_shipped_for_unknown_uri() -> None:
    with pytest.raises(SchemaNotShipped, match="not shipped with rspy-batch") as info:
        offline_validator()._get_schema("https://example.com/nope/schema.json")
    assert isinstance(info.value, RspyError)


def test_every_vendored_schema_is_indexed_and_self_consistent() -> None:
    root = files("rspy_batch") / "schemas"
    index = json.loads((root / "index.json").read_text())
    for uri, rel in index.items():
        assert uri.startswith("https://") and rel == uri.split("://", 1)[1]
        schema = json.loads((root / rel).read_text())
        assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
        assert uri in shipped_schemas()
        # Each extension schema requires its own URL in stac_extensions (core fragments,
        # such as STAC 1.0.0's basics.json, are no extensions).
        if not uri.startswith("https://schemas.stacspec.org/"):
            assert f'"const": "{uri}"' in json.dumps(schema), uri
    for core in ("item", "catalog", "collection"):
        assert any(u.endswith(f"/{core}.json") for u in shipped_schemas())


def test_validation_does_not_mutate_input() -> None:
    item = cadip_session_item()
    before = copy.deepcopy(item)
    validate_dict(item)
    assert item == before
