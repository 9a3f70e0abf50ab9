"""Pure builders for OData ``$filter`` expressions and query strings.

Every function returns a plain string (or ``None`` for "no constraint"), so terms
compose freely and can be compared verbatim in tests. Literal formatting follows
what the Copernicus stations accept: strings single-quoted with ``'`` doubled,
datetimes unquoted as ``2026-01-01T00:00:00.000Z``, GUIDs unquoted.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

COMPARISON_OPS = ("eq", "ne", "gt", "ge", "lt", "le")

ATTRIBUTE_TYPES = {
    "String": "StringAttribute",
    "Integer": "IntegerAttribute",
    "Double": "DoubleAttribute",
    "DateTimeOffset": "DateTimeOffsetAttribute",
    "Boolean": "BooleanAttribute",
}


def format_datetime(value: datetime) -> str:
    """Format as the stations expect: UTC, millisecond precision, ``Z`` suffix."""
    # A naive datetime is taken as UTC: stations only speak UTC and guessing the
    # local zone would silently shift every window.
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    # Not strftime: its %Y does not pad years before 1000 on glibc, which no parser reads.
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}.{value.microsecond // 1000:03d}Z")


def literal(value: Any) -> str:
    """Render a Python value as an OData literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"OData has no literal for {value!r}")
        return repr(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot render {type(value).__name__} as an OData literal")


def _compare(field: str, op: str, value: Any) -> str:
    return f"{field} {op} {literal(value)}"


def eq(field: str, value: Any) -> str:
    return _compare(field, "eq", value)


def ne(field: str, value: Any) -> str:
    return _compare(field, "ne", value)


def gt(field: str, value: Any) -> str:
    return _compare(field, "gt", value)


def ge(field: str, value: Any) -> str:
    return _compare(field, "ge", value)


def lt(field: str, value: Any) -> str:
    return _compare(field, "lt", value)


def le(field: str, value: Any) -> str:
    return _compare(field, "le", value)


def in_(field: str, values: Iterable[Any]) -> str:
    """``field in (v1, v2, ...)`` (one value: ``field eq v1``); an empty list is refused
    since ``in ()`` is invalid."""
    rendered = [literal(v) for v in values]
    if not rendered:
        raise ValueError(f"in_({field!r}) needs at least one value")
    if len(rendered) == 1:
        # Same meaning, and "x in ('a')" is what odata-query (the simulator's parser)
        # cannot read: it takes the parentheses for grouping.
        return f"{field} eq {rendered[0]}"
    return f"{field} in ({', '.join(rendered)})"


def _string_function(name: str, field: str, value: str) -> str:
    # ", " matches rs-server and the CADIP/AUXIP mocks' regexes.
    return f"{name}({field}, {literal(str(value))})"


def contains(field: str, value: str) -> str:
    return _string_function("contains", field, value)


def startswith(field: str, value: str) -> str:
    return _string_function("startswith", field, value)


def endswith(field: str, value: str) -> str:
    return _string_function("endswith", field, value)


def _has_top_level(term: str, word: str) -> bool:
    """True if `` word `` occurs in ``term`` outside parentheses and string literals."""
    depth = 0
    in_string = False
    needle = f" {word} "
    i = 0
    while i < len(term):
        ch = term[i]
        if in_string:
            if ch == "'":
                in_string = False  # a doubled '' re-enters on the next char
        elif ch == "'":
            in_string = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and term.startswith(needle, i):
            return True
        i += 1
    return False


def _clean(terms: Iterable[str | None]) -> list[str]:
    return [t for t in terms if t]


def and_(*terms: str | None) -> str | None:
    """Join terms with ``and``; ``None``/empty terms are skipped, no terms gives ``None``."""
    parts = _clean(terms)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    # "or" binds looser than "and", so an or-term must be wrapped to keep its meaning.
    return " and ".join(f"({p})" if _has_top_level(p, "or") else p for p in parts)


def or_(*terms: str | None) -> str | None:
    """Join terms with ``or``; ``None``/empty terms are skipped, no terms gives ``None``."""
    parts = _clean(terms)
    if not parts:
        return None
    return " or ".join(parts)


def not_(term: str) -> str:
    return f"not ({term})"


def _attribute_type_for(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, datetime):
        return "DateTimeOffset"
    return "String"


def attribute(name: str, value: Any, *, op: str = "eq", type: str = "String") -> str:
    """Lambda filter on a CSC typed attribute (AUXIP/PRIP ``Attributes``)."""
    try:
        cast = f"OData.CSC.{ATTRIBUTE_TYPES[type]}"
    except KeyError:
        raise ValueError(
            f"unknown attribute type {type!r}; expected one of {sorted(ATTRIBUTE_TYPES)}"
        ) from None
    if op == "in":
        condition = in_(f"att/{cast}/Value", value)
    elif op in COMPARISON_OPS:
        condition = _compare(f"att/{cast}/Value", op, value)
    else:
        raise ValueError(f"unknown operator {op!r}")
    return f"Attributes/{cast}/any(att:att/Name eq {literal(name)} and {condition})"


def intersects(wkt: str) -> str:
    """Spatial filter on the product footprint; ``wkt`` is lon/lat WGS84."""
    if "'" in wkt:
        raise ValueError("WKT must not contain quotes")
    return f"OData.CSC.Intersects(area=geography'SRID=4326;{wkt.strip()}')"


def time_window(field: str, start: Any = None, stop: Any = None) -> str | None:
    """Half-open window ``[start, stop)`` so consecutive windows never overlap."""
    return and_(
        ge(field, start) if start is not None else None,
        lt(field, stop) if stop is not None else None,
    )


def fields_filter(fields: Mapping[str, Any] | None) -> str | None:
    """Scalar values become ``eq``, lists/tuples/sets become ``in``."""
    terms: list[str | None] = []
    for name, value in (fields or {}).items():
        if isinstance(value, list | tuple | set | frozenset):
            values = sorted(value, key=str) if isinstance(value, set | frozenset) else value
            terms.append(in_(name, values))
        else:
            terms.append(eq(name, value))
    return and_(*terms)


def attributes_filter(attributes: Mapping[str, Any] | None) -> str | None:
    """One ``attribute()`` term per entry; a list value becomes an ``or`` of terms.

    The attribute type follows the Python type of each value (str → String,
    int → Integer, float → Double, datetime → DateTimeOffset, bool → Boolean).
    """
    terms: list[str | None] = []
    for name, value in (attributes or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        terms.append(or_(*(attribute(name, v, type=_attribute_type_for(v)) for v in values)))
    return and_(*terms)


def query_params(
    filter: str | None = None,
    top: int | None = None,
    skip: int | None = None,
    orderby: str | None = None,
    expand: str | None = None,
    count: bool = False,
) -> dict[str, str]:
    """OData system query options; unset options are left out."""
    params: dict[str, str] = {}
    if filter:
        params["$filter"] = filter
    if top is not None:
        params["$top"] = str(top)
    if skip is not None:
        params["$skip"] = str(skip)
    if orderby:
        params["$orderby"] = orderby
    if expand:
        params["$expand"] = expand
    if count:
        params["$count"] = "true"
    return params


# Characters left readable in query values; everything else (space, ';', '=', '&',
# '+', '#') is percent-encoded. Spaces become %20, never '+': OData servers are not
# required to read '+' as a space.
_SAFE_VALUE_CHARS = "$'(),:/@"


def encode_query(params: Mapping[str, str]) -> str:
    """Encode query options keeping ``$`` in the names, unlike ``urlencode``."""
    return "&".join(
        f"{quote(str(k), safe='$')}={quote(str(v), safe=_SAFE_VALUE_CHARS)}"
        for k, v in params.items()
    )


def search_filter(
    *,
    fields: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
    start: Any = None,
    stop: Any = None,
    time_field: str = "PublicationDate",
    footprint_wkt: str | None = None,
) -> str | None:
    """The ``$filter`` of a station search: fields, attributes, ``[start, stop)``, area."""
    return and_(
        fields_filter(fields),
        attributes_filter(attributes),
        time_window(time_field, start, stop),
        intersects(footprint_wkt) if footprint_wkt else None,
    )
