"""A static search index beside the JSON: one stac-geoparquet file per collection-month.

::

    <collection prefix>/index/year=<YYYY>/month=<MM>/items.parquet

Hive-style partition folders, so ``pyarrow.dataset`` / ``pyarrow.parquet.read_table`` /
``geopandas.read_parquet`` read the whole index of a collection as one table with ``year``
and ``month`` columns. A row is one STAC item in stac-geoparquet form (properties lifted
to columns, ``geometry`` as WKB, ``bbox`` as a ``{xmin, ymin, xmax, ymax}`` struct,
timestamps as ``timestamp[us, UTC]``), so the file round-trips to the item JSON.

**Which month holds an item.** The month of the datetime that places the item in the JSON
tree (:func:`rspy_batch.catalog.layout.item_datetime`: ``datetime``, else
``start_datetime``), so an item's JSON and its row move together. An item's interval may
reach far outside that month (an auxiliary file valid for years, a session crossing
midnight at a month's end), so a query cannot prune by folder name alone: months that
overlap the query are read, and every other month is read only when its Parquet footer
statistics (min of ``start_datetime``/``datetime``, max of ``end_datetime``/``datetime``/
``start_datetime``) say an interval in it reaches into the query. Footers are a few KiB.

**Query semantics** are :func:`matches`, the one definition both :func:`query_index` and
:func:`query_walk` (the JSON walk it must agree with) apply.

**Incremental.** :func:`write_month_index` rewrites a month file only when its bytes
change; the bytes depend only on the set of items (rows sorted by id, item keys sorted,
timestamps normalised), so an unchanged month is never rewritten.

stac-geoparquet 0.8.3 cannot take items without geometry (it calls
``shapely.geometry.shape(None)``) nor mixes of items with and without ``bbox`` (it reads
the missing bbox as a list of length 0 and fails with "Mixed 2d-3d bounding boxes"), so
such items are converted with a placeholder (an empty GeometryCollection, a zero bbox)
and the placeholder is then replaced by a null in the Arrow table: the file holds a
null ``geometry`` and a null ``bbox`` for them, which GeoParquet allows and geopandas reads
as ``None``. (stac-geoparquet's own ``stac_table_to_items`` cannot turn such a row back into
JSON; geopandas and plain pyarrow can read it.)
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import reduce
from operator import and_
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

from rspy_batch.catalog import layout
from rspy_batch.catalog.storage import Store
from rspy_batch.catalog.walk import walk_items
from rspy_batch.s3 import split_location

log = logging.getLogger(__name__)

Doc = dict[str, Any]

PARQUET = "application/vnd.apache.parquet"
UTC_US = pa.timestamp("us", tz="UTC")
# The properties stac-geoparquet stores as timestamps (its convert_timestamp_columns).
TIMESTAMP_PROPERTIES = ("datetime", "start_datetime", "end_datetime", "created", "updated",
                        "expires", "published", "unpublished")
TIME_COLUMNS = ("datetime", "start_datetime", "end_datetime")
QUERY_COLUMNS = ["id", "bbox", *TIME_COLUMNS]
BBOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
EMPTY_GEOMETRY: Doc = {"type": "GeometryCollection", "geometries": []}
READ_THREADS = 16
_MONTH_PATH = re.compile(r"/year=(\d{4})/month=(\d{2})/items\.parquet$")


# -- query semantics (pure) -----------------------------------------------------------

def matches(item: Doc, bbox: Sequence[float] | None, start: datetime | None,
            stop: datetime | None) -> bool:
    """Whether ``item`` answers a query for ``bbox`` and the time range ``[start, stop)``.

    - ``bbox`` (``[xmin, ymin, xmax, ymax]`` or the 6-number 3D form, whose z is ignored)
      intersects the item's ``bbox``, edges inclusive (touching counts). An item without
      ``bbox`` never matches a bbox query. Boxes are compared as plain numbers: an item
      bbox crossing the antimeridian (``xmin > xmax``) is not unwrapped, so it matches only
      what its numbers say.
    - The item's interval ``[start_datetime or datetime, end_datetime or datetime]``
      (closed; a missing end is the start) overlaps ``[start, stop)`` (stop exclusive): an
      instantaneous item at exactly ``start`` matches, one at exactly ``stop`` does not.
      An item with neither ``start_datetime`` nor ``datetime`` never matches a time query.
    - ``None`` leaves that dimension open; naive datetimes are taken as UTC.
    """
    if bbox is not None and not bbox_intersects(item.get("bbox"), bbox):
        return False
    if start is None and stop is None:
        return True
    interval = item_interval(item)
    if interval is None:
        return False
    begin, end = interval
    return (start is None or end >= _aware(start)) and (stop is None or begin < _aware(stop))


def bbox_intersects(item_bbox: Sequence[float] | None, query: Sequence[float]) -> bool:
    if not item_bbox:
        return False
    ix0, iy0, ix1, iy1 = _corners(item_bbox)
    qx0, qy0, qx1, qy1 = _corners(query)
    return ix0 <= qx1 and ix1 >= qx0 and iy0 <= qy1 and iy1 >= qy0


def item_interval(item: Doc) -> tuple[datetime, datetime] | None:
    """``(begin, end)`` of an item, or None when it has no time at all."""
    props = item.get("properties") or {}
    begin = props.get("start_datetime") or props.get("datetime")
    if not begin:
        return None
    end = props.get("end_datetime") or props.get("datetime") or begin
    return layout.parse_datetime(begin), layout.parse_datetime(end)


def _corners(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    if len(bbox) == 4:
        return bbox[0], bbox[1], bbox[2], bbox[3]
    if len(bbox) == 6:
        return bbox[0], bbox[1], bbox[3], bbox[4]
    raise ValueError(f"a bbox has 4 or 6 numbers, not {len(bbox)}: {list(bbox)!r}")


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# -- writing ----------------------------------------------------------------------------

def index_key(collection_prefix: str, year: str, month: str) -> str:
    return f"{collection_prefix}/index/year={year}/month={month}/items.parquet"


def month_of(item: Doc) -> tuple[str, str]:
    """``(YYYY, MM)`` of the partition holding ``item``: the month of its placing datetime."""
    year, month, _ = layout.day_parts(layout.item_datetime(item))
    return year, month


def month_index_bytes(items: list[Doc]) -> bytes:
    """One stac-geoparquet file holding ``items`` (one collection-month).

    The bytes depend only on the items' content, not on their order nor on the key order
    inside them: the same items always give the same bytes (pyarrow writes no time or
    host into Parquet metadata; its version string is the only other input).
    """
    if not items:
        raise ValueError("an index file needs at least one item")
    rows = sorted((_canonical(item) for item in items),
                  key=lambda row: (row["id"], orjson.dumps(row)))
    no_geometry = [row.get("geometry") is None for row in rows]
    no_bbox = [not row.get("bbox") for row in rows]
    dims = {len(row["bbox"]) for row in rows if row.get("bbox")}
    placeholder_bbox = [0.0] * (6 if dims == {6} else 4)
    for row, geometry_missing, bbox_missing in zip(rows, no_geometry, no_bbox, strict=True):
        if geometry_missing:
            row["geometry"] = EMPTY_GEOMETRY
        if bbox_missing:
            row["bbox"] = placeholder_bbox
        row.setdefault("assets", {})  # stac-geoparquet indexes it unconditionally
    # Keys added above go back in sorted place: the column order must not depend on
    # whether the first row had a geometry.
    rows = [dict(sorted(row.items())) for row in rows]
    table = parse_stac_items_to_arrow(rows, schema="FullFile").read_all()
    table = _null_where(table, "geometry", no_geometry)
    table = _null_where(table, "bbox", no_bbox)
    table = _float_bbox(table)
    table = _with_time_columns(table)
    table = _without_null_types(table)
    with tempfile.TemporaryDirectory(prefix="rspy-index-") as tmp:
        path = os.path.join(tmp, "items.parquet")
        to_parquet(table, path)
        return Path(path).read_bytes()


def write_month_index(store: Store, collection_prefix: str, year: str, month: str,
                      items: list[Doc]) -> str | None:
    """Make the month's index file hold exactly ``items``; return its key if the stored
    object changed (written, or deleted because ``items`` is empty), None if it was
    already right.

    The write is a compare-and-swap against the version read: a concurrent writer of the
    same month raises :class:`~rspy_batch.errors.ConflictError`, and the caller re-reads
    that month's items and calls again (both writers derive the file from the catalog,
    so a blind overwrite could lose the other's items).
    """
    key = index_key(collection_prefix, year, month)
    blob = store.read(key)
    if not items:
        if blob is None:
            return None
        store.delete(key)
        return key
    data = month_index_bytes(items)
    if blob is not None and blob.data == data:
        return None
    store.put(key, data, expect=blob.version if blob else None, content_type=PARQUET)
    return key


def write_collection_index(store: Store, collection_prefix: str,
                           items: Iterable[Doc]) -> list[str]:
    """Index a whole collection from ``items`` (all of them): each month's file is
    rewritten only if it changed, and month files no item falls in any more are
    deleted. Returns the keys that changed, sorted."""
    by_month: dict[tuple[str, str], list[Doc]] = defaultdict(list)
    for item in items:
        by_month[month_of(item)].append(item)
    stored = {ym for ym in map(_month_of_key, store.list(f"{collection_prefix}/index"))
              if ym is not None}
    changed = []
    for year, month in sorted(by_month.keys() | stored):
        key = write_month_index(store, collection_prefix, year, month,
                                by_month.get((year, month), []))
        if key:
            changed.append(key)
    return changed


def _month_of_key(key: str) -> tuple[str, str] | None:
    found = _MONTH_PATH.search("/" + key)
    return (found.group(1), found.group(2)) if found else None


def _canonical(item: Doc) -> Doc:
    """A private copy with sorted keys (column order then depends on content only) and
    timestamps parsed by the same function :func:`matches` uses, written back in the one
    form Arrow parses (UTC, microseconds): the index and the JSON cannot disagree on an
    instant, and forms Arrow rejects (nanoseconds, ``+01:00`` offsets) are accepted."""
    row = orjson.loads(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
    props = row.setdefault("properties", {})
    for name in TIMESTAMP_PROPERTIES:
        value = props.get(name)
        if isinstance(value, str) and value:
            try:
                dt = layout.parse_datetime(value).astimezone(UTC)
            except ValueError as exc:
                raise ValueError(f"item {row.get('id')!r}: {name} {value!r}: {exc}") from None
            props[name] = dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return row


def _null_where(table: pa.Table, name: str, mask: list[bool]) -> pa.Table:
    if not any(mask):
        return table
    index = table.schema.get_field_index(name)
    column = table.column(index).combine_chunks()
    nulled = pc.if_else(pa.array(mask), pa.nulls(len(column), column.type), column)
    # The field (not just its name) keeps the geoarrow.wkb extension metadata.
    return table.set_column(index, table.schema.field(index), nulled)


def _float_bbox(table: pa.Table) -> pa.Table:
    """Integer-only bboxes infer as int64; one type for every month keeps the files one
    dataset (a reader does not have to unify int and float structs)."""
    index = table.schema.get_field_index("bbox")
    field = table.schema.field(index)
    target = pa.struct([pa.field(f.name, pa.float64()) for f in field.type])
    if field.type == target:
        return table
    return table.set_column(index, field.with_type(target), table.column(index).cast(target))


def _without_null_types(table: pa.Table) -> pa.Table:
    """Drop the fields whose type is ``null`` (a property null in every item of the month)
    and type a list of ``null`` (an empty list in every item: ``stac_extensions: []``) as a
    list of strings, at any depth.

    A reader of the whole index takes the first month's schema and casts the others to
    it; ``null`` accepts no other type, so one month where ``sat:absolute_orbit`` is
    always null would make ``pyarrow.parquet.read_table(<index dir>)`` fail on the next
    month. Dropping is lossless for search (null and absent are the same to a query);
    strings are what STAC's list fields mostly hold (extensions, keywords, instruments).
    """
    for index in reversed(range(table.num_columns)):
        field = table.schema.field(index)
        clean = _clean_type(field.type)
        if clean is None:
            table = table.remove_column(index)
        elif clean != field.type:
            table = table.set_column(index, field.with_type(clean),
                                     table.column(index).cast(clean))
    return table


def _clean_type(dtype: pa.DataType) -> pa.DataType | None:
    if pa.types.is_null(dtype):
        return None
    if pa.types.is_struct(dtype):
        fields = []
        for child in dtype:
            clean = _clean_type(child.type)
            if clean is not None:
                fields.append(child.with_type(clean))
        return pa.struct(fields) if fields else None
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        value = _clean_type(dtype.value_type)
        if value is None:  # only empty lists, or lists of all-null structs
            if not pa.types.is_null(dtype.value_type):
                return None
            value = pa.string()
        return dtype if value == dtype.value_type else pa.list_(dtype.value_field.with_type(value))
    return dtype


def _with_time_columns(table: pa.Table) -> pa.Table:
    """Every file has the three time columns (null when no item of the month has one), so
    filters and readers see one schema."""
    for name in TIME_COLUMNS:
        if name not in table.schema.names:
            table = table.append_column(pa.field(name, UTC_US), pa.nulls(len(table), UTC_US))
    return table


# -- querying ---------------------------------------------------------------------------

def query_index(location: str, collection_prefix: str, bbox: Sequence[float] | None = None,
                start: datetime | None = None, stop: datetime | None = None) -> list[str]:
    """Ids (sorted) of the items of a collection matching the query, read from its index.

    ``location`` is the published catalog's root (a directory or ``s3://bucket/prefix``;
    S3 through s3fs with the standard AWS environment, ``AWS_ENDPOINT_URL`` honoured).

    1. Months: those overlapping ``[start, stop)`` are read; the others only when their
       footer statistics say an item interval reaches into the query (module doc). The
       statistics are min/max bounds: this step may keep a month with no match, never
       drop one with a match.
    2. Rows: a pyarrow filter on the ``bbox`` struct and the time columns, which is the
       same arithmetic as :func:`matches` on the same numbers and instants (the index
       stores the instants ``matches`` parses, see ``_canonical``).
    3. The surviving rows go through :func:`matches` itself, so the index answers by the
       one shared definition even if the Arrow expression and it ever drift apart in a
       way that keeps too many rows.
    """
    start = _aware(start) if start else None
    stop = _aware(stop) if stop else None
    fs, root = _filesystem(location)
    base = f"{root}/{collection_prefix}/index"
    files = _month_files(fs, base)
    inside = [path for ym, path in files.items() if _month_overlaps(ym, start, stop)]
    outside = [path for ym, path in files.items() if not _month_overlaps(ym, start, stop)]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        reaching = [path for path, keep in zip(
            outside, pool.map(lambda p: _footer_reaches(fs, p, start, stop), outside),
            strict=True) if keep]
        wanted = sorted(inside + reaching)
        log.debug("index %s: %d month files, reading %d", base, len(files), len(wanted))
        expression = arrow_filter(bbox, start, stop)
        tables = list(pool.map(lambda p: _read_rows(fs, p, expression), wanted))
    ids = []
    for table in tables:
        for row in table.to_pylist():
            if matches(_row_item(row), bbox, start, stop):
                ids.append(row["id"])
    return sorted(ids)


def query_walk(store: Store, collection_key: str, bbox: Sequence[float] | None = None,
               start: datetime | None = None, stop: datetime | None = None) -> list[str]:
    """The same query answered by walking the JSON from ``collection_key`` (a collection
    document's key, e.g. ``rspy/prip-s2b-msil1c/collection.json``): sorted item ids."""
    return sorted(item["id"] for _key, item in walk_items(store, collection_key)
                  if matches(item, bbox, start, stop))


def arrow_filter(bbox: Sequence[float] | None, start: datetime | None,
                 stop: datetime | None) -> pc.Expression | None:
    """:func:`matches` as a pyarrow expression over the index columns (null: no row)."""
    terms = []
    if bbox is not None:
        x0, y0, x1, y1 = (float(v) for v in _corners(bbox))
        terms += [pc.field("bbox", "xmin") <= x1, pc.field("bbox", "xmax") >= x0,
                  pc.field("bbox", "ymin") <= y1, pc.field("bbox", "ymax") >= y0]
    if start is not None:
        end = pc.coalesce(pc.field("end_datetime"), pc.field("datetime"),
                          pc.field("start_datetime"))
        terms.append(end >= pa.scalar(_aware(start), UTC_US))
    if stop is not None:
        begin = pc.coalesce(pc.field("start_datetime"), pc.field("datetime"))
        terms.append(begin < pa.scalar(_aware(stop), UTC_US))
    return reduce(and_, terms) if terms else None


def _filesystem(location: str) -> tuple[Any, str]:
    """An fsspec filesystem and the root path inside it for a catalog location."""
    kind, where = split_location(location)
    if kind == "local":
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), str(Path(where).expanduser().resolve())
    import s3fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # No listings cache: a query right after a publish must see the new month files.
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint} if endpoint else {},
                           use_listings_cache=False)
    return fs, where.removeprefix("s3://").rstrip("/")


def _month_files(fs: Any, base: str) -> dict[tuple[str, str], str]:
    out = {}
    for path in fs.glob(f"{base}/year=*/month=*/items.parquet"):
        found = _MONTH_PATH.search(path)
        if found:
            out[(found.group(1), found.group(2))] = path
    return out


def _month_overlaps(ym: tuple[str, str], start: datetime | None, stop: datetime | None) -> bool:
    year, month = int(ym[0]), int(ym[1])
    first = datetime(year, month, 1, tzinfo=UTC)
    after = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return (start is None or after > start) and (stop is None or first < stop)


def _footer_reaches(fs: Any, path: str, start: datetime | None, stop: datetime | None) -> bool:
    """Whether the file's statistics allow an item interval overlapping ``[start, stop)``.
    Missing statistics on a column that holds values keep the file (never a wrong drop)."""
    meta = pq.read_metadata(path, filesystem=fs)
    lows: list[datetime] = []
    highs: list[datetime] = []
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for ci in range(group.num_columns):
            column = group.column(ci)
            name = column.path_in_schema
            if name not in TIME_COLUMNS:
                continue
            stats = column.statistics
            if stats is None or not stats.has_min_max:
                if stats is not None and stats.null_count == column.num_values:
                    continue  # an all-null column bounds nothing
                return True
            if name in ("start_datetime", "datetime"):
                lows.append(_stat_datetime(stats.min))
            highs.append(_stat_datetime(stats.max))
    low_ok = stop is None or (bool(lows) and min(lows) < stop)
    high_ok = start is None or (bool(highs) and max(highs) >= start)
    return low_ok and high_ok


def _stat_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return _aware(value)
    raise TypeError(f"unexpected timestamp statistic {value!r}")


def _read_rows(fs: Any, path: str, expression: pc.Expression | None) -> pa.Table:
    return pq.read_table(path, filesystem=fs, columns=QUERY_COLUMNS, filters=expression)


def _row_item(row: Doc) -> Doc:
    """The part of an item :func:`matches` looks at, rebuilt from an index row."""
    box = row.get("bbox")
    props = {name: row[name].isoformat() for name in TIME_COLUMNS if row.get(name)}
    return {"bbox": [box[f] for f in BBOX_FIELDS] if box else None, "properties": props}
