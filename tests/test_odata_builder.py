"""The OData $filter builder: exact strings, and that they parse as OData."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from odata_query.grammar import ODataLexer, ODataParser

from rspy_batch.stations import odata as o

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 1, 2, 12, 30, 15, 123456, tzinfo=UTC)


def parses(expr: str) -> None:
    ODataParser().parse(ODataLexer().tokenize(expr))


# -- literals -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "'abc'"),
        ("it's", "'it''s'"),
        ("''", "''''''"),
        ("", "''"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (42, "42"),
        (-3, "-3"),
        (1.5, "1.5"),
        (T0, "2026-01-01T00:00:00.000Z"),
        (T1, "2026-01-02T12:30:15.123Z"),
        (date(2026, 3, 4), "2026-03-04"),
        (
            uuid.UUID("0a88d2a2-6e73-41a1-abce-2cdf29dfcf04"),
            "0a88d2a2-6e73-41a1-abce-2cdf29dfcf04",
        ),
    ],
)
def test_literal(value, expected):
    assert o.literal(value) == expected


def test_literal_datetime_is_converted_to_utc_and_naive_taken_as_utc():
    paris = timezone(timedelta(hours=1))
    assert o.literal(datetime(2026, 1, 1, 1, 0, tzinfo=paris)) == "2026-01-01T00:00:00.000Z"
    assert o.literal(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000Z"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_literal_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        o.literal(bad)


def test_literal_rejects_unknown_type():
    with pytest.raises(TypeError):
        o.literal(object())


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"))))
def test_any_string_literal_parses(text):
    parses(o.eq("Name", text))


# -- terms ------------------------------------------------------------------------


def test_comparisons():
    assert o.eq("Satellite", "S1A") == "Satellite eq 'S1A'"
    assert o.ne("Retransfer", True) == "Retransfer ne true"
    assert o.gt("PublicationDate", T0) == "PublicationDate gt 2026-01-01T00:00:00.000Z"
    assert o.ge("DownlinkOrbit", 53186) == "DownlinkOrbit ge 53186"
    assert o.lt("ContentLength", 10) == "ContentLength lt 10"
    assert o.le("ContentDate/End", T0) == "ContentDate/End le 2026-01-01T00:00:00.000Z"


def test_in():
    assert o.in_("Satellite", ["S1A", "S2B"]) == "Satellite in ('S1A', 'S2B')"
    assert o.in_("NumChannels", (1, 2)) == "NumChannels in (1, 2)"
    with pytest.raises(ValueError):
        o.in_("Satellite", [])


def test_string_functions():
    assert o.contains("Name", "AUX_") == "contains(Name, 'AUX_')"
    assert o.startswith("Name", "S1A") == "startswith(Name, 'S1A')"
    assert o.endswith("Name", "o'k") == "endswith(Name, 'o''k')"


def test_and_or_skip_none_and_parenthesise_ors():
    a, b, c = o.eq("a", 1), o.eq("b", 2), o.eq("c", 3)
    assert o.and_(a, None, b) == "a eq 1 and b eq 2"
    assert o.and_(None, a) == "a eq 1"
    assert o.and_() is None and o.and_(None, "") is None
    assert o.or_() is None and o.or_(None) is None
    assert o.and_(o.or_(a, b), c) == "(a eq 1 or b eq 2) and c eq 3"
    # and binds tighter than or: no parentheses needed
    assert o.or_(o.and_(a, b), c) == "a eq 1 and b eq 2 or c eq 3"
    # already-parenthesised ors and "or" inside strings are left alone
    assert o.and_("(a eq 1 or b eq 2)", c) == "(a eq 1 or b eq 2) and c eq 3"
    assert o.and_(o.eq("Name", "x or y"), c) == "Name eq 'x or y' and c eq 3"
    assert o.and_(o.eq("Name", "it's or"), c) == "Name eq 'it''s or' and c eq 3"
    nested = o.and_(o.or_(a, o.and_(b, o.or_(c, a))), b)
    assert nested == "(a eq 1 or b eq 2 and (c eq 3 or a eq 1)) and b eq 2"
    assert o.not_(o.or_(a, b)) == "not (a eq 1 or b eq 2)"


def test_attribute_types_and_ops():
    assert o.attribute("productType", "AUX_OBMEMC") == (
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' "
        "and att/OData.CSC.StringAttribute/Value eq 'AUX_OBMEMC')"
    )
    assert o.attribute("orbitNumber", 43829, op="ge", type="Integer") == (
        "Attributes/OData.CSC.IntegerAttribute/any(att:att/Name eq 'orbitNumber' "
        "and att/OData.CSC.IntegerAttribute/Value ge 43829)"
    )
    assert "OData.CSC.DoubleAttribute/Value eq 1.5" in o.attribute("x", 1.5, type="Double")
    assert "OData.CSC.BooleanAttribute/Value eq false" in o.attribute(
        "sliceProductFlag", False, type="Boolean"
    )
    assert "OData.CSC.DateTimeOffsetAttribute/Value lt 2026-01-01T00:00:00.000Z" in (
        o.attribute("processingDate", T0, op="lt", type="DateTimeOffset")
    )
    assert "Value in ('A', 'B')" in o.attribute("platformSerialIdentifier", ["A", "B"], op="in")
    with pytest.raises(ValueError):
        o.attribute("x", 1, type="Float")
    with pytest.raises(ValueError):
        o.attribute("x", 1, op="like")


def test_intersects():
    wkt = "POLYGON((-59.3 2.6,-63.1 -14.0,-50 -10,-59.3 2.6))"
    assert o.intersects(wkt) == f"OData.CSC.Intersects(area=geography'SRID=4326;{wkt}')"
    with pytest.raises(ValueError):
        o.intersects("POINT(0 0)') or (1 eq 1")


def test_time_window_is_half_open():
    assert o.time_window("PublicationDate", T0, T1) == (
        "PublicationDate ge 2026-01-01T00:00:00.000Z and "
        "PublicationDate lt 2026-01-02T12:30:15.123Z"
    )
    assert o.time_window("X", T0, None) == "X ge 2026-01-01T00:00:00.000Z"
    assert o.time_window("X", None, None) is None


def test_fields_and_attributes_filters():
    assert o.fields_filter({"Satellite": ["S1A", "S1C"], "Retransfer": False}) == (
        "Satellite in ('S1A', 'S1C') and Retransfer eq false"
    )
    assert o.fields_filter({}) is None and o.fields_filter(None) is None
    got = o.attributes_filter({"productType": ["A", "B"], "orbitNumber": 5})
    assert got == (
        "(Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
        "att/OData.CSC.StringAttribute/Value eq 'A') or "
        "Attributes/OData.CSC.StringAttribute/any(att:att/Name eq 'productType' and "
        "att/OData.CSC.StringAttribute/Value eq 'B')) and "
        "Attributes/OData.CSC.IntegerAttribute/any(att:att/Name eq 'orbitNumber' and "
        "att/OData.CSC.IntegerAttribute/Value eq 5)"
    )


def test_query_params_and_encoding():
    assert o.query_params() == {}
    params = o.query_params(
        filter="a eq 1", top=10, skip=0, orderby="PublicationDate asc", expand="Files", count=True
    )
    assert params == {
        "$filter": "a eq 1",
        "$top": "10",
        "$skip": "0",
        "$orderby": "PublicationDate asc",
        "$expand": "Files",
        "$count": "true",
    }
    encoded = o.encode_query({"$filter": "Name eq 'a&b' and X eq 1", "$top": "5"})
    assert encoded == "$filter=Name%20eq%20'a%26b'%20and%20X%20eq%201&$top=5"
    assert "%3B" in o.encode_query({"$filter": o.intersects("POINT(1 2)")})


# -- everything built must parse ------------------------------------------------------

BUILT = [
    o.eq("Name", "it's"),
    o.in_("Satellite", ["S1A", "S2B"]),
    o.contains("Name", "x"),
    o.startswith("Name", "x"),
    o.endswith("Name", "x"),
    o.not_(o.eq("a", None)),
    o.and_(o.or_(o.eq("a", 1), o.eq("b", 2.5)), o.eq("c", True)),
    o.time_window("ContentDate/Start", T0, T1),
    o.attribute("productType", "AUX"),
    o.attribute("orbitNumber", 5, type="Integer", op="gt"),
    o.attribute("x", [1, 2], op="in", type="Integer"),
    o.attribute("processingDate", T0, type="DateTimeOffset"),
    o.attribute("flag", True, type="Boolean"),
    o.attribute("d", 1.5, type="Double"),
    o.intersects("POLYGON((0 0,1 0,1 1,0 0))"),
    o.eq("Id", uuid.UUID("0a88d2a2-6e73-41a1-abce-2cdf29dfcf04")),
    o.search_filter(
        fields={"Satellite": ["S1A", "S1C"], "DownlinkOrbit": 53186},
        attributes={"productType": ["A", "B"], "platformShortName": "SENTINEL-1"},
        start=T0,
        stop=T1,
        footprint_wkt="POINT(1 2)",
    ),
]


@pytest.mark.parametrize("expr", BUILT)
def test_built_filters_parse(expr):
    parses(expr)
