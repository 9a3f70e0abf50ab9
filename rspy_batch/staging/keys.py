"""Where a staged file goes: a key template over item and file, confined to its item.

The default ``{collection}/{year}/{month}/{item}/{file}`` is configurable per collection
template (``staging.key_template``). File and item names come from stations and are
untrusted: they must be safe single path segments, and the key the template produces
must be normalised and end with ``<item>/<file>``, so that no name can place bytes
outside the item's own prefix.
"""

from __future__ import annotations

import posixpath
from datetime import datetime

from rspy_batch.catalog import layout
from rspy_batch.errors import EntityRejected

DEFAULT_KEY_TEMPLATE = "{collection}/{year}/{month}/{item}/{file}"


def object_key(template: str, *, collection: str, item_id: str, dt: datetime,
               file_name: str) -> str:
    """The key (below the staging root) of ``file_name`` of item ``item_id``."""
    for what, name in (("item id", item_id), ("file name", file_name)):
        reason = layout.unsafe_id_reason(name)
        if reason:
            raise EntityRejected(item_id, f"unsafe {what}: {reason}")
    y, m, d = layout.day_parts(dt)
    try:
        key = template.format(collection=collection, year=y, month=m, day=d, item=item_id,
                              file=file_name)
    except (KeyError, IndexError) as exc:
        raise ValueError(f"staging key template {template!r}: unknown field {exc}") from None
    if (posixpath.normpath(key) != key or key.startswith("/") or ".." in key.split("/")
            or not key.endswith(f"{item_id}/{file_name}")):
        raise ValueError(f"staging key template {template!r} must produce a relative key "
                         f"ending with {{item}}/{{file}}; got {key!r}")
    return key
