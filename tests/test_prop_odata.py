"""Property: a ``$filter`` built with ``rspy_batch.stations.odata`` means what it was built
from, end to end.

Expressions are generated as a small model (comparisons on strings with quotes and any
unicode, datetimes with any microsecond and time zone, dates, numbers, GUIDs, booleans and
null; ``contains``/``startswith``/``endswith``; ``in``; typed attribute lambdas;
geographic ``Intersects``; and/or/not nesting), rendered with the builder's own API, sent
through the station client's query encoding and the simulator's query decoding, then:

- the text parses with odata-query, and the parse gives back the model (structure and
  literal values): no value, however hostile, changes the expression's structure;
- the simulator's compiled predicate agrees, on generated entities, with an evaluation of
  the model written here (:func:`evaluate`), which follows the simulator's documented
  loose typing (numeric text compares as a number, date-time text as a date-time).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

from hypothesis import example, given
from hypothesis import strategies as st
from odata_query import ast
from odata_query.grammar import ODataLexer, ODataParser
from prop_support import aware_datetimes, iso_z, prop_settings

from rspy_batch.simulator.odata_filter import compile_filter
from rspy_batch.stations import odata as o

# -- the model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cmp:
    field: str
    op: str  # eq ne gt ge lt le
    value: Any


@dataclass(frozen=True)
class Func:
    name: str  # contains startswith endswith
    field: str
    value: str


@dataclass(frozen=True)
class In:
    field: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Attr:
    name: str
    type: str  # String Integer Double DateTimeOffset Boolean
    op: str  # a comparison or "in"
    value: Any  # a tuple for "in"


@dataclass(frozen=True)
class Geo:
    box: tuple[int, int, int, int]  # x0 y0 x1 y1


@dataclass(frozen=True)
class And:
    terms: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    terms: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    term: Any


def box_wkt(box: tuple[int, int, int, int]) -> str:
    x0, y0, x1, y1 = box
    return f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"


def build(term: Any) -> str:
    """The builder's rendering of a model term (only the public API of ``odata``)."""
    if isinstance(term, Cmp):
        return getattr(o, term.op)(term.field, term.value)
    if isinstance(term, Func):
        return getattr(o, term.name)(term.field, term.value)
    if isinstance(term, In):
        return o.in_(term.field, term.values)
    if isinstance(term, Attr):
        return o.attribute(term.name, term.value, op=term.op, type=term.type)
    if isinstance(term, Geo):
        return o.intersects(box_wkt(term.box))
    if isinstance(term, And):
        return o.and_(*(build(t) for t in term.terms))
    if isinstance(term, Or):
        return o.or_(*(build(t) for t in term.terms))
    return o.not_(build(term.term))


# -- the fields of the generated entity set ---------------------------------------------

KINDS = {  # field → kind of its values
    "Name": "str", "Satellite": "str", "Id": "guid", "PublicationDate": "datetime",
    "ContentDate/Start": "datetime", "ContentLength": "int", "CloudCover": "float",
    "Online": "bool",
}
SCHEMA = frozenset({*KINDS, "ContentDate", "Attributes", "GeoFootprint"})
ATTRIBUTE_KINDS = {"String": "str", "Integer": "int", "Double": "float",
                   "DateTimeOffset": "datetime", "Boolean": "bool"}
ATTRIBUTE_NAMES = ("productType", "orbitNumber", "it's", "''", "or 1 eq 1", "é\u2028")
ORDERED = ("eq", "ne", "gt", "ge", "lt", "le")
MIN_NAIVE = datetime(1000, 1, 1)

texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
small_texts = st.sampled_from(["", "'", "''", "a", "S1A", "S1A_IW", "x' or 'a' eq 'a", "é", "(",
                               ")", "%", "&", "+", "#", ";", " or ", "\u0000", "\n"])


FRESH_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "str": st.one_of(texts, small_texts),
    "guid": st.uuids(),
    # odata-query reads years 1000-9999 only (OData allows 0000-0999 too).
    "datetime": st.one_of(aware_datetimes(min_year=1000), st.datetimes(MIN_NAIVE),
                          st.dates(MIN_NAIVE.date())),
    "int": st.integers(min_value=-(10**20), max_value=10**20),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
}


# Station datetimes: UTC text at millisecond precision, from 1970 to 2100.
station_times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1),
                             timezones=st.just(UTC)).map(
    lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))


SIZES = st.integers(min_value=-(10**6), max_value=10**12)
# A field value as stations send it: JSON, dates as text, sizes sometimes as text.
ENTITY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "str": st.one_of(texts, small_texts),
    "guid": st.uuids().map(str),
    "datetime": station_times.map(iso_z),
    "int": st.one_of(SIZES, SIZES.map(str)),
    "float": st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    "bool": st.booleans(),
}
PRESENCE = st.sampled_from(["value", "value", "value", "null", "absent"])
ATTRIBUTE_TYPES = st.sampled_from(sorted(ATTRIBUTE_KINDS))
ATTRIBUTE_NAME = st.sampled_from(ATTRIBUTE_NAMES)


@st.composite
def entities(draw: st.DrawFn) -> dict[str, Any]:
    entity: dict[str, Any] = {}
    for field, kind in KINDS.items():
        presence = draw(PRESENCE)
        value = draw(ENTITY_VALUES[kind]) if presence == "value" else None
        if presence == "absent":
            continue
        if "/" in field:
            outer, inner = field.split("/")
            entity.setdefault(outer, {})[inner] = value
        else:
            entity[field] = value
    attributes = []
    for _ in range(draw(st.integers(0, 4))):
        type_ = draw(ATTRIBUTE_TYPES)
        attributes.append({"@odata.type": f"#OData.CSC.{type_}Attribute",
                           "Name": draw(ATTRIBUTE_NAME), "ValueType": type_,
                           "Value": draw(ENTITY_VALUES[ATTRIBUTE_KINDS[type_]])})
    entity["Attributes"] = attributes
    if draw(st.booleans()):
        x0, y0 = draw(st.integers(-10, 10)), draw(st.integers(-10, 10))
        x1, y1 = x0 + draw(st.integers(0, 5)), y0 + draw(st.integers(0, 5))
        entity["GeoFootprint"] = {"type": "Polygon", "coordinates": [
            [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    return entity


def seen_values(pool: list[dict[str, Any]], field: str) -> list[Any]:
    """Literal values equal to what the entities hold, so that comparisons also hit."""
    kind = KINDS[field]
    out = []
    for entity in pool:
        value = get(entity, field)
        if value is None:
            continue
        if kind == "datetime":
            out.append(datetime.fromisoformat(value.replace("Z", "+00:00")))
        elif kind == "guid":
            out.append(uuid.UUID(value))
        elif kind == "int":
            out.append(int(value))
        else:
            out.append(value)
    return out


ZONES = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
NEAR = st.integers(-2000, 2000).map(lambda us: timedelta(microseconds=us))


@st.composite
def literal_for(draw: st.DrawFn, kind: str, seen: list[Any]) -> Any:
    if seen and draw(st.booleans()):
        value = draw(st.sampled_from(seen))
        if kind == "datetime" and draw(st.booleans()):
            # The same instant in another zone, or a few microseconds off: what the
            # builder's UTC conversion and millisecond truncation must get right.
            value = (value + draw(NEAR)).astimezone(draw(ZONES))
        return value
    return draw(FRESH_VALUES[kind])


LEAVES = ["cmp", "cmp", "func", "in", "attr", "geo"]
NODES = ["and", "or", "or", "not"]  # nesting up to depth 3, more likely near the top


@st.composite
def terms(draw: st.DrawFn, pool: list[dict[str, Any]], depth: int = 0) -> Any:
    shape = draw(st.sampled_from(LEAVES + NODES * max(0, 3 - depth)))
    if shape in ("and", "or"):
        children = tuple(draw(st.lists(terms(pool, depth + 1), min_size=2, max_size=3)))
        return And(children) if shape == "and" else Or(children)
    if shape == "not":
        return Not(draw(terms(pool, depth + 1)))
    if shape == "geo":
        x0, y0 = draw(st.integers(-12, 12)), draw(st.integers(-12, 12))
        return Geo((x0, y0, x0 + draw(st.integers(0, 6)), y0 + draw(st.integers(0, 6))))
    if shape == "attr":
        type_ = draw(st.sampled_from(sorted(ATTRIBUTE_KINDS)))
        kind = ATTRIBUTE_KINDS[type_]
        seen = [a["Value"] for e in pool for a in e["Attributes"] if a["ValueType"] == type_]
        if kind == "datetime":
            seen = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in seen]
        name = draw(st.sampled_from(ATTRIBUTE_NAMES))
        if kind == "bool":
            op = draw(st.sampled_from(["eq", "ne"]))
        else:
            op = draw(st.sampled_from([*ORDERED, "in"]))
        if op == "in":
            values = draw(st.lists(literal_for(kind, seen), min_size=1, max_size=3))
            return Attr(name, type_, op, tuple(values))
        return Attr(name, type_, op, draw(literal_for(kind, seen)))
    field = draw(st.sampled_from(sorted(KINDS)))
    kind = KINDS[field]
    seen = seen_values(pool, field)
    if shape == "func":
        field = draw(st.sampled_from(["Name", "Satellite"]))
        needle = draw(st.one_of(small_texts, texts,
                                st.sampled_from([v[:3] for v in seen_values(pool, field)] or [""])))
        return Func(draw(st.sampled_from(["contains", "startswith", "endswith"])), field, needle)
    if shape == "in":
        return In(field, tuple(draw(st.lists(literal_for(kind, seen), min_size=1, max_size=3))))
    if draw(st.integers(0, 9)) == 0:
        return Cmp(field, draw(st.sampled_from(["eq", "ne"])), None)
    ops = ["eq", "ne"] if kind in ("bool", "guid") else list(ORDERED)
    return Cmp(field, draw(st.sampled_from(ops)), draw(literal_for(kind, seen)))


# -- the reference evaluation -----------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "ge": operator.ge,
    "lt": operator.lt, "le": operator.le}


def get(entity: dict[str, Any], field: str) -> Any:
    value: Any = entity
    for part in field.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def sent(value: Any) -> Any:
    """What a literal means once on the wire: date-times in UTC at millisecond precision
    (naive ones taken as UTC), dates at midnight UTC, GUIDs as text."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def compare(op: str, held: Any, literal: Any) -> bool:
    literal = sent(literal)
    if literal is None or held is None:
        return op in ("eq", "ne") and _OPS[op](held, literal)
    if isinstance(literal, datetime):
        if not isinstance(held, str):
            return False
        held = datetime.fromisoformat(held.replace("Z", "+00:00"))
    elif isinstance(literal, int | float) and not isinstance(literal, bool) and isinstance(
            held, str):
        held = float(held) if "." in held else int(held)
    if type(held) is bool and type(literal) is not bool:
        return False
    if type(literal) is bool and type(held) is not bool:
        return False
    return _OPS[op](held, literal)


def evaluate(term: Any, entity: dict[str, Any]) -> bool:
    if isinstance(term, Cmp):
        return compare(term.op, get(entity, term.field), term.value)
    if isinstance(term, Func):
        held = get(entity, term.field)
        check = {"contains": lambda s, n: n in s, "startswith": str.startswith,
                 "endswith": str.endswith}[term.name]
        return isinstance(held, str) and check(held, term.value)
    if isinstance(term, In):
        return any(compare("eq", get(entity, term.field), v) for v in term.values)
    if isinstance(term, Attr):
        def matches(attr: dict[str, Any]) -> bool:
            if attr.get("@odata.type") != f"#OData.CSC.{term.type}Attribute":
                return False
            if attr.get("Name") != term.name:
                return False
            if term.op == "in":
                return any(compare("eq", attr.get("Value"), v) for v in term.value)
            return compare(term.op, attr.get("Value"), term.value)
        return any(matches(a) for a in entity.get("Attributes") or [])
    if isinstance(term, Geo):
        foot = entity.get("GeoFootprint")
        if not foot:
            return False
        xs = [p[0] for p in foot["coordinates"][0]]
        ys = [p[1] for p in foot["coordinates"][0]]
        x0, y0, x1, y1 = term.box
        return x0 <= max(xs) and min(xs) <= x1 and y0 <= max(ys) and min(ys) <= y1
    if isinstance(term, And):
        return all(evaluate(t, entity) for t in term.terms)
    if isinstance(term, Or):
        return any(evaluate(t, entity) for t in term.terms)
    return not evaluate(term.term, entity)


# -- the parse, read back into the model ----------------------------------------------

_COMPARATORS = {ast.Eq: "eq", ast.NotEq: "ne", ast.Gt: "gt", ast.GtE: "ge", ast.Lt: "lt",
                ast.LtE: "le"}


def parse(text: str) -> ast._Node:
    return ODataParser().parse(ODataLexer().tokenize(text))


def path(node: ast._Node) -> str:
    if isinstance(node, ast.Identifier):
        return "/".join([*node.namespace, node.name]) if node.namespace else node.name
    assert isinstance(node, ast.Attribute), node
    return f"{path(node.owner)}/{node.attr}"


def literal_of(node: ast._Node) -> tuple[str, Any]:
    """A parsed literal as (kind, value), in the same form as :func:`canonical`."""
    if isinstance(node, ast.String):
        return "str", node.val
    if isinstance(node, ast.GUID):
        return "guid", node.val
    if isinstance(node, ast.Integer):
        return "int", int(node.val)
    if isinstance(node, ast.Float):
        return "float", float(node.val)
    if isinstance(node, ast.Boolean):
        return "bool", node.val == "true"
    if isinstance(node, ast.Null):
        return "null", None
    if isinstance(node, ast.DateTime):
        return "datetime", datetime.fromisoformat(node.val.replace("Z", "+00:00"))
    assert isinstance(node, ast.Date), node
    return "datetime", datetime.combine(date.fromisoformat(node.val), datetime.min.time(), UTC)


def canonical(value: Any) -> tuple[str, Any]:
    value = sent(value)
    if value is None:
        return "null", None
    if isinstance(value, bool):
        return "bool", value
    if isinstance(value, int):
        return "int", value
    if isinstance(value, float):
        return "float", value
    if isinstance(value, datetime):
        return "datetime", value
    if isinstance(value, str) and value in GUIDS:
        return "guid", value
    return "str", value


GUIDS: set[str] = set()  # GUID texts of the current example (they render unquoted)


def unbuild(node: ast._Node) -> Any:
    """The model term a parse tree stands for (and/or chains flattened)."""
    if isinstance(node, ast.BoolOp):
        cls = And if isinstance(node.op, ast.And) else Or
        parts = []
        for side in (node.left, node.right):
            sub = unbuild(side)
            parts.extend(sub.terms if isinstance(sub, cls) else [sub])
        return cls(tuple(parts))
    if isinstance(node, ast.UnaryOp):
        assert isinstance(node.op, ast.Not)
        return Not(unbuild(node.operand))
    if isinstance(node, ast.Compare) and isinstance(node.comparator, ast.In):
        return In(path(node.left), tuple(literal_of(v) for v in node.right.val))
    if isinstance(node, ast.Compare):
        return Cmp(path(node.left), _COMPARATORS[type(node.comparator)], literal_of(node.right))
    if isinstance(node, ast.Call) and node.func.name == "Intersects":
        (arg,) = node.args
        return Geo(arg.param.val)
    if isinstance(node, ast.Call):
        field, needle = node.args
        return Func(node.func.name, path(field), literal_of(needle))
    assert isinstance(node, ast.CollectionLambda), node
    # odata-query keeps the cast's last segment only: Attributes/IntegerAttribute.
    cast = path(node.owner).removeprefix("Attributes/").removesuffix("Attribute")
    body = unbuild(node.lambda_.expression)
    assert isinstance(body, And) and len(body.terms) == 2, body
    name, cond = body.terms
    assert name == Cmp("att/Name", "eq", ("str", name.value[1])), name
    assert cond.field == f"att/{cast}Attribute/Value", cond
    if isinstance(cond, In):
        return Attr(name.value[1], cast, "in", cond.values)
    return Attr(name.value[1], cast, cond.op, cond.value)


def expected_tree(term: Any) -> Any:
    """The model term as the parse must give it back: literals canonical, one-value ``in``
    written as ``eq`` by the builder, nested and/or flattened."""
    if isinstance(term, Cmp):
        return Cmp(term.field, term.op, canonical(term.value))
    if isinstance(term, Func):
        return Func(term.name, term.field, ("str", term.value))
    if isinstance(term, In):
        if len(term.values) == 1:
            return Cmp(term.field, "eq", canonical(term.values[0]))
        return In(term.field, tuple(canonical(v) for v in term.values))
    if isinstance(term, Attr):
        if term.op == "in" and len(term.value) == 1:
            return Attr(term.name, term.type, "eq", canonical(term.value[0]))
        if term.op == "in":
            return Attr(term.name, term.type, "in", tuple(canonical(v) for v in term.value))
        return Attr(term.name, term.type, term.op, canonical(term.value))
    if isinstance(term, Geo):
        return Geo(f"SRID=4326;{box_wkt(term.box)}")
    if isinstance(term, And | Or):
        parts = []
        for sub in (expected_tree(t) for t in term.terms):
            parts.extend(sub.terms if type(sub) is type(term) else [sub])
        return type(term)(tuple(parts))
    return Not(expected_tree(term.term))


def guid_texts(term: Any) -> set[str]:
    values: list[Any] = []
    if isinstance(term, Cmp | Attr):
        values = list(term.value) if isinstance(term.value, tuple) else [term.value]
    elif isinstance(term, In):
        values = list(term.values)
    elif isinstance(term, And | Or):
        return set().union(*(guid_texts(t) for t in term.terms))
    elif isinstance(term, Not):
        return guid_texts(term.term)
    return {str(v) for v in values if isinstance(v, uuid.UUID)}


# -- the properties ---------------------------------------------------------------------


def on_the_wire(text: str) -> str:
    """The ``$filter`` the simulator reads after the client encoded the query."""
    query = o.encode_query(o.query_params(filter=text, top=100, skip=0,
                                          orderby="PublicationDate desc"))
    return dict(parse_qsl(query, keep_blank_values=True))["$filter"]


def check(term: Any, pool: list[dict[str, Any]]) -> None:
    text = build(term)
    assert on_the_wire(text) == text
    GUIDS.clear()
    GUIDS.update(guid_texts(term))
    assert unbuild(parse(text)) == expected_tree(term), text
    predicate = compile_filter(text, SCHEMA).predicate
    assert [predicate(e) for e in pool] == [evaluate(term, e) for e in pool], text


@st.composite
def cases(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    pool = draw(st.lists(entities(), min_size=1, max_size=6))
    return draw(terms(pool)), pool


# A one-value "in" ("x in ('a')") did not parse: odata-query reads the parentheses as a
# group; the builder now writes it as "eq".
@example(case=(In("Satellite", ("S1A",)), [{"Satellite": "S1A", "Attributes": []}]))
@example(case=(Attr("orbitNumber", "Integer", "in", (5,)),
               [{"Attributes": [{"@odata.type": "#OData.CSC.IntegerAttribute",
                                 "Name": "orbitNumber", "ValueType": "Integer", "Value": 5}]}]))
# A time zone far enough east moves the literal to the previous day (and year) in UTC.
@example(case=(Cmp("PublicationDate", "lt", datetime(2026, 1, 1, 0, 30, tzinfo=timezone(
    timedelta(hours=23, minutes=59)))), [{"PublicationDate": "2025-12-31T00:30:00.000Z",
                                          "Attributes": []}]))
@prop_settings(200)
@given(case=cases())
def test_built_filter_parses_to_its_model_and_selects_what_it_says(
        case: tuple[Any, list[dict[str, Any]]]) -> None:
    check(*case)


@prop_settings(60)
@given(data=st.data())
def test_search_filter_selects_what_its_arguments_say(data: st.DataObject) -> None:
    """The station client's one entry point: fields (scalars → eq, lists → in), attributes
    (type from the Python value, lists → or), the half-open window and the area."""
    pool = data.draw(st.lists(entities(), min_size=1, max_size=6))
    fields = {}
    for field in data.draw(st.lists(st.sampled_from(["Name", "Satellite", "ContentLength",
                                                     "Online", "Id"]), unique=True, max_size=2)):
        kind, seen = KINDS[field], seen_values(pool, field)
        if data.draw(st.booleans()):
            fields[field] = data.draw(literal_for(kind, seen))
        else:
            fields[field] = data.draw(st.lists(literal_for(kind, seen), min_size=1, max_size=3))
    python_type = {"String": str, "Integer": int, "Double": float, "DateTimeOffset": datetime,
                   "Boolean": bool}
    attributes = {}
    for name in data.draw(st.lists(st.sampled_from(ATTRIBUTE_NAMES), unique=True, max_size=2)):
        type_ = data.draw(st.sampled_from(sorted(ATTRIBUTE_KINDS)))
        seen = [a["Value"] for e in pool for a in e["Attributes"] if a["ValueType"] == type_]
        if type_ == "DateTimeOffset":
            seen = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in seen]
        one = literal_for(ATTRIBUTE_KINDS[type_], seen).filter(
            lambda v, t=python_type[type_]: type(v) is t and v is not None)
        attributes[name] = data.draw(one | st.lists(one, min_size=1, max_size=2))
    start = data.draw(st.none() | aware_datetimes(1970, 2099))
    stop = data.draw(st.none() | aware_datetimes(1970, 2099))
    box = data.draw(st.none() | st.tuples(st.integers(-12, 12), st.integers(-12, 12),
                                          st.integers(0, 6), st.integers(0, 6)))
    area = None if box is None else (box[0], box[1], box[0] + box[2], box[1] + box[3])

    text = o.search_filter(fields=fields, attributes=attributes, start=start, stop=stop,
                           footprint_wkt=None if area is None else box_wkt(area))
    # The same search in the model, from the documented meaning of each argument.
    parts: list[Any] = []
    for field, value in fields.items():
        parts.append(In(field, tuple(value)) if isinstance(value, list) else Cmp(field, "eq",
                                                                                  value))
    for name, value in attributes.items():
        values = value if isinstance(value, list) else [value]
        alts = [Attr(name, next(t for t, p in python_type.items() if type(v) is p), "eq", v)
                for v in values]
        parts.append(alts[0] if len(alts) == 1 else Or(tuple(alts)))
    if start is not None:
        parts.append(Cmp("PublicationDate", "ge", start))
    if stop is not None:
        parts.append(Cmp("PublicationDate", "lt", stop))
    if area is not None:
        parts.append(Geo(area))
    if not parts:
        assert text is None
        return
    model = parts[0] if len(parts) == 1 else And(tuple(parts))
    assert text == build(model)
    check(model, pool)


def test_datetime_literals_pad_years_before_1000() -> None:
    # strftime's %Y wrote "5-01-01T…", which no OData parser reads; the ABNF's year is
    # four digits. (odata-query itself reads only 1000-9999, so the properties stay there.)
    assert o.literal(datetime(5, 1, 1, 2, 3, 4, 5678, tzinfo=UTC)) == "0005-01-01T02:03:04.005Z"


@prop_settings(100)
@given(wkt=st.one_of(st.text(max_size=30), st.sampled_from([
    "POINT(0 0)') or (Name eq 'x", "POINT(0 0)) or (1 eq 1", "POINT(0 0)'", "''"])))
def test_intersects_area_never_changes_the_structure(wkt: str) -> None:
    try:
        text = o.intersects(wkt)
    except ValueError:
        assert "'" in wkt
        return
    assert unbuild(parse(text)) == Geo(f"SRID=4326;{wkt.strip()}")
