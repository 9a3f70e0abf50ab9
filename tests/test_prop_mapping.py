"""Property: station entity → STAC item mapping is total over hostile input.

For any entity (the simulator's realistic ones, then fields deleted, nulled or replaced by
hostile values), a mapper either returns an item that validates offline, has a safe id
and points its assets at the station's own download URLs, or raises ``EntityRejected``
(what ingest records as a rejection) — never anything else. Mapping is pure: the same
input gives the same output and the input is left as it was.

The ``@example`` cases are failures these properties found, kept so they stay covered.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from prop_support import mutated, prop_settings, realistic_entity, station_entity

from rspy_batch.catalog import layout
from rspy_batch.errors import EntityRejected
from rspy_batch.mapping import MAPPERS
from rspy_batch.validation import validate_dict

SERVICES = sorted(MAPPERS)
STATION_URLS = ("https://station.example.eu/odata/v1/", "https://station.example.eu/odata/v1")
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MULTIHASH_MD5 = re.compile(r"d510[0-9a-f]{32}")
DELETE = object()

Case = tuple[str, dict[str, Any], str]


def map_entity(service: str, entity: dict[str, Any], url: str) -> dict[str, Any] | EntityRejected:
    try:
        return MAPPERS[service](entity, station_id="st", station_url=url)
    except EntityRejected as rejected:
        return rejected


def expected_hrefs(service: str, entity: dict[str, Any], url: str) -> dict[str, str]:
    """Asset key → the station download URL of the file it stands for (ICD §1.0)."""
    root = url.rstrip("/") + "/"
    if service == "cadip":
        # A mapped session's Files is a list of objects, or empty/absent (no assets).
        return {f["Name"]: f"{root}Files({f['Id']})/$value" for f in entity.get("Files") or []}
    return {entity["Name"]: f"{root}Products({entity['Id']})/$value"}


def check_mapping(service: str, entity: dict[str, Any], url: str) -> None:
    before = copy.deepcopy(entity)
    first = map_entity(service, entity, url)
    assert entity == before, "the mapper changed its input"
    second = map_entity(service, copy.deepcopy(entity), url)
    if isinstance(first, EntityRejected):
        assert isinstance(second, EntityRejected) and str(second) == str(first)
        assert first.reason and isinstance(first.entity_id, str)
        return
    assert second == first, "same entity, different item"
    item = first
    json.dumps(item, allow_nan=False)  # plain JSON: no NaN/Infinity, no Python objects
    assert validate_dict(item) == []
    assert layout.unsafe_id_reason(item["id"]) is None
    # Placing the item must work: the writer files it by this datetime.
    layout.item_key("c", item["id"], layout.item_datetime(item))
    assert {k: a["href"] for k, a in item["assets"].items()} == expected_hrefs(
        service, entity, url)
    files = entity.get("Files") or [] if service == "cadip" else []
    ids = [entity["Id"]] + [f["Id"] for f in files]
    assert all(isinstance(i, str) and GUID.fullmatch(i) for i in ids), \
        "an href carries a station Id that is no GUID"
    for asset in item["assets"].values():
        # The schema's pattern ends in "$", which lets a trailing newline through: staging
        # compares this text with the MD5 it computes, so check it strictly here.
        checksum = asset.get("file:checksum")
        assert checksum is None or MULTIHASH_MD5.fullmatch(checksum), checksum


def regression(service: str, index: int, *changes: tuple[tuple[Any, ...], Any]) -> Case:
    """A fixed realistic entity with ``changes`` (path, value or DELETE) applied."""
    entity = realistic_entity(service, index)
    for path, value in changes:
        parent: Any = entity
        for part in path[:-1]:
            parent = parent[part]
        if value is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    return service, entity, STATION_URLS[0]


@st.composite
def hostile_cases(draw: st.DrawFn) -> Case:
    service = draw(st.sampled_from(SERVICES))
    entity = draw(mutated(draw(station_entity(service))))
    return service, entity, draw(st.sampled_from(STATION_URLS))


@prop_settings(60)
@given(st.data())
def test_realistic_entities_map_to_valid_items(data: st.DataObject) -> None:
    service = data.draw(st.sampled_from(SERVICES))
    entity = data.draw(station_entity(service))
    assert isinstance(map_entity(service, entity, STATION_URLS[0]), dict)
    check_mapping(service, entity, STATION_URLS[0])


# AttributeError: a file entry that is no object was read before it was checked.
@example(case=regression("cadip", 0, (("Files", 1), "DCS_01.raw")))
# Years before 1000 were written "999-…" (strftime), no RFC 3339 date-time.
@example(case=regression("auxip", 0, (("ContentDate", "Start"), "0999-06-30T12:00:00Z")))
@example(case=regression("cadip", 0, (("Files", 0, "EvictionDate"), "0043-05-13T04:07:39Z")))
# OverflowError: the edge of datetime's range converted to UTC.
@example(case=regression("prip", 0, (("PublicationDate",), "0001-01-01T00:00:00+01:00")))
# Ids that are no GUID went verbatim into the download href and into uuid fields.
@example(case=regression("lta", 0, (("Id",), "../../admin")))
@example(case=regression("cadip", 0, (("Files", 2, "Id"), "x)/../../Sessions(")))
@example(case=regression("auxip", 0, (("Id",), 0)))
# TypeError: Attributes not a list, an attribute Name that cannot be a dict key.
@example(case=regression("auxip", 1, (("Attributes",), 7)))
@example(case=regression("auxip", 1, (("Attributes", 0, "Name"), ["productType"])))
# AttributeError / ValueError on Attributes of the wrong kind.
@example(case=regression("prip", 0, (("Attributes", 1, "Value"), ["IW_RAW__0S"])))
@example(case=regression("prip", 4, (("Attributes", 7, "Value"), "cloudy")))
# OverflowError: int(Infinity) (Python's json reads "Infinity").
@example(case=regression("prip", 0, (("ContentLength",), float("inf"))))
# A trailing newline passed the MD5 check ("$" matches before it).
@example(case=regression("auxip", 0, (("Checksum", 0, "Value"), "0123456789abcdef" * 2 + "\n")))
# shapely reads GeoJSON leniently: string coordinates, an empty hole.
@example(case=regression("lta", 0, (("GeoFootprint", "coordinates", 0, 1), ["2.6792", "13.6"])))
@example(case=regression("prip", 0, (("GeoFootprint",), {"type": "Polygon", "coordinates": [
    [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], []]})))
# Values copied through unchecked that the schemas constrain.
@example(case=regression("cadip", 0, (("DownlinkOrbit",), DELETE)))
@example(case=regression("cadip", 0, (("NumChannels",), 9)))
@example(case=regression("cadip", 0, (("StationId",), "")))
@example(case=regression("cadip", 0, (("Files", 0, "Size"), "-1")))
@example(case=regression("prip", 0, (("Attributes", 0, "Value"), "XX")))
@example(case=regression("prip", 0, (("Attributes", 13, "Value"), "SIDEWAYS")))
@example(case=regression("lta", 0, (("ContentType",), -14314)))
@prop_settings(300)
@given(case=hostile_cases())
def test_hostile_entities_map_or_are_rejected(case: Case) -> None:
    check_mapping(*case)


def test_final_block_text_is_not_taken_for_true() -> None:
    # bool("false") is True: a string flag must not turn into the opposite boolean.
    service, entity, url = regression("cadip", 0, (("Files", 0, "FinalBlock"), "false"))
    assert isinstance(map_entity(service, entity, url), EntityRejected)


@prop_settings(100)
@given(service=st.sampled_from(SERVICES), junk=st.one_of(
    st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)))
def test_entities_that_are_not_station_shaped_are_rejected(service: str, junk: Any) -> None:
    entity = {"Junk": junk} if not isinstance(junk, dict) else junk
    assert isinstance(map_entity(service, entity, STATION_URLS[0]), EntityRejected)
