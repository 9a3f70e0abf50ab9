"""Where each STAC object sits in the catalog, and the relative links between them.

Layout (STAC best practices: root at the top, one directory per level, each item in its
own folder, date sub-catalogs so no catalog lists more than a day of items)::

    catalog.json
    <collection>/collection.json
    <collection>/<YYYY>/catalog.json
    <collection>/<YYYY>/<MM>/catalog.json
    <collection>/<YYYY>/<MM>/<DD>/catalog.json
    <collection>/<YYYY>/<MM>/<DD>/<item id>/<item id>.json
    _rspy/runs/<stage>/<collection>/<window>.json      run records (not STAC)
    _rspy/ids/<collection>/<item id>.json              where each item is filed (not STAC)

All functions here are pure: keys in, keys or hrefs out.
"""

from __future__ import annotations

import posixpath
import re
from datetime import UTC, datetime

ROOT = "catalog.json"
RECORDS_PREFIX = "_rspy/runs"
IDS_PREFIX = "_rspy/ids"

# Item and collection ids become folder names: no separators, no dot-segments, no control
# characters, bounded length. Station names are untrusted input.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")
# An item folder sits beside its day's catalog.json, a collection folder beside the root
# catalog.json: on a file system one name cannot be both a file and a folder.
RESERVED_NAMES = frozenset({"catalog.json", "collection.json"})


def unsafe_id_reason(value: str) -> str | None:
    """Why ``value`` cannot be a folder name in the catalog, or None if it can."""
    if not isinstance(value, str) or not value:
        return "empty name"
    if "/" in value or "\\" in value:
        return f"name {value!r} contains a path separator"
    if ".." in value:
        return f"name {value!r} contains '..'"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f"name {value!r} contains a control character"
    if len(value) > 200:
        return f"name of {len(value)} characters is longer than 200"
    if not _SAFE_ID.match(value):
        return f"name {value!r} has characters outside [A-Za-z0-9._-]"
    if value in RESERVED_NAMES:
        return f"name {value!r} is reserved for the catalog's own documents"
    return None


def collection_key(collection_id: str) -> str:
    return f"{collection_id}/collection.json"


def day_parts(dt: datetime) -> tuple[str, str, str]:
    dt = dt.astimezone(UTC)
    return f"{dt.year:04d}", f"{dt.month:02d}", f"{dt.day:02d}"


def year_key(collection_id: str, year: str) -> str:
    return f"{collection_id}/{year}/catalog.json"


def month_key(collection_id: str, year: str, month: str) -> str:
    return f"{collection_id}/{year}/{month}/catalog.json"


def day_key(collection_id: str, year: str, month: str, day: str) -> str:
    return f"{collection_id}/{year}/{month}/{day}/catalog.json"


def item_key(collection_id: str, item_id: str, dt: datetime) -> str:
    y, m, d = day_parts(dt)
    return f"{collection_id}/{y}/{m}/{d}/{item_id}/{item_id}.json"


def item_day(key: str) -> datetime | None:
    """The day an item key files its item under (see :func:`item_key`), or None."""
    parts = key.split("/")
    if len(parts) != 6:
        return None
    try:
        return datetime(int(parts[1]), int(parts[2]), int(parts[3]), tzinfo=UTC)
    except ValueError:
        return None


def id_key(collection_id: str, item_id: str) -> str:
    """The id index entry of an item: which key holds it (see :class:`CatalogWriter`)."""
    return f"{IDS_PREFIX}/{collection_id}/{item_id}.json"


def record_key(stage: str, collection_id: str, window_id: str) -> str:
    return f"{RECORDS_PREFIX}/{stage}/{collection_id}/{window_id}.json"


def relative_href(from_key: str, to_key: str) -> str:
    """Href of ``to_key`` relative to the document at ``from_key`` (``./`` or ``../`` form).

    Keys are normalised (no ``.``/``..`` segments, see storage), so comparing segments is
    exact; it is also several times faster than ``posixpath.relpath``, which matters at
    three links per item.
    """
    src = from_key.split("/")[:-1]
    dst = to_key.split("/")
    common = 0
    while common < len(src) and common < len(dst) - 1 and src[common] == dst[common]:
        common += 1
    rest = "/".join(dst[common:])
    up = len(src) - common
    return "../" * up + rest if up else "./" + rest


def resolve_href(from_key: str, href: str) -> str:
    """The key a relative ``href`` in the document at ``from_key`` points to."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(from_key), href))


def item_datetime(item: dict) -> datetime:
    """The datetime that places an item in the tree: ``datetime``, else ``start_datetime``."""
    props = item["properties"]
    value = props.get("datetime") or props.get("start_datetime")
    if not value:
        raise ValueError(f"item {item.get('id')!r} has neither datetime nor start_datetime")
    return parse_datetime(value)


def parse_datetime(value: str) -> datetime:
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_datetime(dt: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, the form stations and STAC use."""
    dt = dt.astimezone(UTC)
    # Not strftime: its %Y does not pad years before 1000 on glibc ("999-…"), which is
    # no RFC 3339 date-time; a station's odd date must not make an invalid item.
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
            f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z")
