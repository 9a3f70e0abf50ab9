"""OData system query options: ``$orderby``, ``$top``/``$skip``, ``$count``, ``$expand``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rspy_batch.simulator.odata_filter import FilterError


@dataclass(frozen=True)
class QueryOptions:
    filter: str | None
    orderby: str | None
    top: int  # already capped
    skip: int
    count: bool
    expand: frozenset[str]


def _int_option(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise FilterError("InvalidQueryOption", f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise FilterError("InvalidQueryOption", f"{name} must not be negative")
    return value


def parse_options(params: dict[str, str], page_cap: int) -> QueryOptions:
    """Read the options; a ``$top`` above the cap is cut silently, as stations do."""
    top = _int_option(params, "$top")
    skip = _int_option(params, "$skip") or 0
    expand_raw = params.get("$expand") or params.get("expand") or ""
    return QueryOptions(
        filter=params.get("$filter") or None,
        orderby=params.get("$orderby") or None,
        top=page_cap if top is None else min(top, page_cap),
        skip=skip,
        count=(params.get("$count") or "").lower() == "true",
        expand=frozenset(p.strip().lower() for p in expand_raw.split(",") if p.strip()),
    )


def parse_orderby(text: str, schema: frozenset[str]) -> list[tuple[list[str], bool]]:
    """``PublicationDate desc, Name`` -> [(path, descending)]; no direction means desc."""
    keys = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise FilterError("InvalidOrderBy", f"cannot parse $orderby {text!r}")
        name = words[0]
        direction = words[1].lower() if len(words) == 2 else "desc"
        if direction not in ("asc", "desc"):
            raise FilterError("InvalidOrderBy", f"bad direction {words[1]!r} in $orderby")
        if name not in schema:
            raise FilterError("InvalidField", f"unknown field {name!r} in $orderby")
        keys.append((name.split("/"), direction == "desc"))
    return keys


def _resolve(entity: dict, path: list[str]) -> Any:
    cur: Any = entity
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def sort_entities(items: list[Any], keys: list[tuple[list[str], bool]], get: Any) -> list[Any]:
    """Stable multi-key sort; entities lacking the field go last in either direction."""
    out = list(items)
    for path, desc in reversed(keys):
        present = [i for i in out if _resolve(get(i), path) is not None]
        absent = [i for i in out if _resolve(get(i), path) is None]
        present.sort(key=lambda i, p=path: _resolve(get(i), p), reverse=desc)
        out = present + absent
    return out


def page(items: Sequence[Any], opts: QueryOptions) -> Sequence[Any]:
    """``$skip`` first, then ``$top`` (the ICD order)."""
    return items[opts.skip : opts.skip + opts.top]
