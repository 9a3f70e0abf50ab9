"""``$filter`` parsed with odata-query and compiled into a predicate over entity dicts.

Compiling once into closures (instead of walking the AST per entity) keeps a
filter over 100,000 products fast. Comparisons follow the stations' loose typing:
strings that hold numbers (CADIP ``Size``, AUXIP ``ContentLength``) compare as
numbers against numeric literals, and date-time text compares as date-times
against date literals.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import shapely
import shapely.wkt
from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser
from shapely.geometry import shape

from rspy_batch.simulator.timefmt import parse_iso

Getter = Callable[[dict, Any], Any]  # (entity, lambda element) -> value
Predicate = Callable[[dict, Any], bool]

ATTRIBUTE_CASTS = {
    "StringAttribute",
    "IntegerAttribute",
    "DoubleAttribute",
    "DateTimeOffsetAttribute",
    "BooleanAttribute",
}
_LAMBDA_FIELDS = {"Name", "Value", "ValueType"}


class FilterError(ValueError):
    """The filter cannot be parsed or names something the entity set does not have."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class CompiledFilter:
    predicate: Callable[[dict], bool]
    fields: set[str] = field(default_factory=set)  # top-level fields the filter reads


_MISSING = object()


def compile_filter(text: str, schema: frozenset[str]) -> CompiledFilter:
    """Parse ``text`` and return a predicate; raise FilterError on any problem."""
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(text))
    except ODataException as exc:
        raise FilterError("InvalidFilter", f"cannot parse $filter: {exc}") from None
    except Exception as exc:  # the lexer/parser raise assorted errors on garbage input
        raise FilterError("InvalidFilter", f"cannot parse $filter: {exc}") from None
    compiler = _Compiler(schema)
    pred = compiler.predicate(tree, None)
    return CompiledFilter(lambda e: bool(pred(e, None)), compiler.fields)


def _path(node: ast._Node) -> list[str]:
    if isinstance(node, ast.Identifier):
        return [*node.namespace, node.name]
    if isinstance(node, ast.Attribute):
        return [*_path(node.owner), node.attr]
    raise FilterError("InvalidFilter", f"expected a field path, got {type(node).__name__}")


def _literal(node: ast._Node) -> Any:
    if isinstance(node, ast.String | ast.GUID):
        return node.val
    if isinstance(node, ast.Integer):
        return int(node.val)
    if isinstance(node, ast.Float):
        return float(node.val)
    if isinstance(node, ast.Boolean):
        return node.val.lower() == "true"
    if isinstance(node, ast.Null):
        return None
    if isinstance(node, ast.DateTime):
        return parse_iso(node.val)
    if isinstance(node, ast.Date):
        return datetime.combine(date.fromisoformat(node.val), datetime.min.time(), UTC)
    if isinstance(node, ast.List):
        return [_literal(v) for v in node.val]
    raise FilterError("InvalidFilter", f"unsupported literal {type(node).__name__}")


def _coerce(value: Any, like: Any) -> Any:
    """Bring a field value to the type of the literal it is compared with."""
    if value is None or like is None:
        return value
    if isinstance(like, datetime) and isinstance(value, str):
        try:
            return parse_iso(value)
        except ValueError:
            return _MISSING
    if isinstance(like, bool):
        return value if isinstance(value, bool) else _MISSING
    if isinstance(like, int | float) and isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return _MISSING
    return value


def _typed(value: Any) -> bool:
    """True for values that steer coercion: date-times and non-boolean numbers."""
    return isinstance(value, datetime) or (
        isinstance(value, int | float) and not isinstance(value, bool)
    )


def _compare(op: Callable[[Any, Any], bool], left: Any, right: Any) -> bool:
    if _typed(right):
        left = _coerce(left, right)
    elif _typed(left):
        right = _coerce(right, left)
    if left is _MISSING or right is _MISSING:
        return False
    if left is None or right is None:
        return op in (operator.eq, operator.ne) and op(left, right)
    try:
        return bool(op(left, right))
    except TypeError:
        return False


_OPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


class _Compiler:
    def __init__(self, schema: frozenset[str]) -> None:
        self.schema = schema
        self.fields: set[str] = set()
        self.lambda_var: str | None = None

    # -- values ---------------------------------------------------------------
    def value(self, node: ast._Node) -> Getter:
        if isinstance(node, ast.Identifier | ast.Attribute):
            return self.field(_path(node))
        const = _literal(node)
        return lambda e, el: const

    def field(self, path: list[str]) -> Getter:
        if self.lambda_var is not None and path[0] == self.lambda_var:
            rest = [p for p in path[1:] if p not in ATTRIBUTE_CASTS]
            if len(rest) != 1 or rest[0] not in _LAMBDA_FIELDS:
                raise FilterError("InvalidField", f"unknown lambda field {'/'.join(path)!r}")
            key = rest[0]
            return lambda e, el: el.get(key) if isinstance(el, dict) else None
        full = "/".join(path)
        if full not in self.schema:
            raise FilterError("InvalidField", f"unknown field {full!r}")
        self.fields.add(path[0])
        if len(path) == 1:
            key = path[0]
            return lambda e, el: e.get(key)

        def get(e: dict, el: Any) -> Any:
            cur: Any = e
            for p in path:
                if not isinstance(cur, dict):
                    return None
                cur = cur.get(p)
            return cur

        return get

    # -- predicates -----------------------------------------------------------
    def predicate(self, node: ast._Node, _: None) -> Predicate:
        if isinstance(node, ast.BoolOp):
            left, right = self.predicate(node.left, None), self.predicate(node.right, None)
            if isinstance(node.op, ast.And):
                return lambda e, el: left(e, el) and right(e, el)
            return lambda e, el: left(e, el) or right(e, el)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.predicate(node.operand, None)
            return lambda e, el: not inner(e, el)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.CollectionLambda):
            return self.any_all(node)
        if isinstance(node, ast.Identifier | ast.Attribute):
            get = self.value(node)  # a bare boolean field, e.g. ``Retransfer``
            return lambda e, el: get(e, el) is True
        raise FilterError("InvalidFilter", f"unsupported expression {type(node).__name__}")

    def compare(self, node: ast.Compare) -> Predicate:
        left = self.value(node.left)
        if isinstance(node.comparator, ast.In):
            if not isinstance(node.right, ast.List):
                raise FilterError("InvalidFilter", "'in' needs a parenthesised list")
            options = _literal(node.right)
            return lambda e, el: any(_compare(operator.eq, left(e, el), o) for o in options)
        op = _OPS.get(type(node.comparator))
        if op is None:
            raise FilterError("InvalidFilter", f"unsupported operator {node.comparator}")
        right = self.value(node.right)
        return lambda e, el: _compare(op, left(e, el), right(e, el))

    def call(self, node: ast.Call) -> Predicate:
        name = node.func.name.lower()
        if name in ("contains", "startswith", "endswith"):
            if len(node.args) != 2:
                raise FilterError("InvalidFilter", f"{name}() takes two arguments")
            subject, needle = self.value(node.args[0]), self.value(node.args[1])
            method = {
                "contains": str.__contains__,
                "startswith": str.startswith,
                "endswith": str.endswith,
            }[name]

            def text_op(e: dict, el: Any) -> bool:
                s, n = subject(e, el), needle(e, el)
                return isinstance(s, str) and isinstance(n, str) and method(s, n)

            return text_op
        if name == "intersects":
            return self.intersects(node)
        raise FilterError("InvalidFilter", f"unknown function {node.func.name!r}")

    def intersects(self, node: ast.Call) -> Predicate:
        geo = None
        for arg in node.args:
            param = arg.param if isinstance(arg, ast.NamedParam) else arg
            if isinstance(param, ast.Geography):
                geo = param.val
        if geo is None:
            raise FilterError("InvalidFilter", "Intersects needs area=geography'SRID=4326;...'")
        wkt = geo.split(";", 1)[1] if geo.upper().startswith("SRID=") else geo
        try:
            area = shapely.wkt.loads(wkt)
        except Exception as exc:
            raise FilterError("InvalidFilter", f"invalid geography: {exc}") from None
        shapely.prepare(area)
        self.fields.add("GeoFootprint")
        cache: dict[int, Any] = {}

        def hit(e: dict, el: Any) -> bool:
            gj = e.get("GeoFootprint")
            if not gj:
                return False
            geom = cache.get(id(gj))
            if geom is None:
                try:
                    geom = cache[id(gj)] = shape(gj)
                except Exception:
                    return False
            return bool(area.intersects(geom))

        return hit

    def any_all(self, node: ast.CollectionLambda) -> Predicate:
        path = _path(node.owner)
        casts = [p for p in path if p in ATTRIBUTE_CASTS]
        coll = [p for p in path if p not in ATTRIBUTE_CASTS and p not in ("OData", "CSC")]
        getter = self.field(coll)
        wanted = f"#OData.CSC.{casts[-1]}" if casts else None
        is_any = isinstance(node.operator, ast.Any)
        if node.lambda_ is None:
            return lambda e, el: bool(getter(e, el)) if is_any else True
        outer, self.lambda_var = self.lambda_var, node.lambda_.identifier.name
        try:
            body = self.predicate(node.lambda_.expression, None)
        finally:
            self.lambda_var = outer

        def check(e: dict, el: Any) -> bool:
            items = getter(e, el) or []
            if wanted:
                items = [i for i in items if i.get("@odata.type") == wanted]
            test = (body(e, i) for i in items)
            return any(test) if is_any else all(test)

        return check
