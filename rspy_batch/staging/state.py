"""What staged means inside an item, as pure functions over item dicts.

A staged asset has its ``href`` on the staging store, the station URL kept as
``alternate.station.href``, ``file:size`` and ``file:checksum`` (MD5 multihash) as
verified during the copy, and ``rspy:staged`` (when). An item is staged when every asset
is. Nothing else marks staging: the catalog is the record.
"""

from __future__ import annotations

import copy
from typing import Any

from rspy_batch.mapping.common import MD5_MULTIHASH_PREFIX

ALTERNATE_ASSETS = "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json"
STAGED_AT = "rspy:staged"

Doc = dict[str, Any]


def is_staged_asset(asset: Doc) -> bool:
    return bool(asset.get(STAGED_AT)) and "station" in (asset.get("alternate") or {})


def is_staged(item: Doc) -> bool:
    return bool(item.get("assets")) and all(is_staged_asset(a) for a in item["assets"].values())


def station_href(asset: Doc) -> str:
    """Where the station serves this asset, staged or not."""
    return (asset.get("alternate") or {}).get("station", {}).get("href") or asset["href"]


def expected_md5(asset: Doc) -> str | None:
    """The station's MD5 (hex) for an unstaged asset, when it gave one."""
    checksum = asset.get("file:checksum")
    if isinstance(checksum, str) and checksum.startswith(MD5_MULTIHASH_PREFIX):
        return checksum[len(MD5_MULTIHASH_PREFIX):]
    return None


def staged_asset(asset: Doc, *, href: str, size: int, md5: str, when: str) -> Doc:
    out = copy.deepcopy(asset)
    out["alternate"] = {**(asset.get("alternate") or {}),
                        "station": {"href": station_href(asset), "title": "Station download"}}
    out["href"] = href
    out["file:size"] = size
    out["file:checksum"] = MD5_MULTIHASH_PREFIX + md5
    out[STAGED_AT] = when
    return out


def apply_staging(current: Doc | None, staged: dict[str, Doc]) -> Doc:
    """Merge policy for the writer: put the staged assets into the stored item.

    Only assets still pointing at the same station file are replaced, so a concurrent
    re-ingest that changed the station file wins and the asset is staged again later.
    """
    if current is None:
        raise ValueError("cannot stage an item that is not in the catalog")
    item = copy.deepcopy(current)
    for key, new in staged.items():
        old = item["assets"].get(key)
        if old is None or station_href(old) != new["alternate"]["station"]["href"]:
            continue
        item["assets"][key] = new
    if any(is_staged_asset(a) for a in item["assets"].values()) and \
            ALTERNATE_ASSETS not in item.get("stac_extensions", []):
        item["stac_extensions"] = [*item.get("stac_extensions", []), ALTERNATE_ASSETS]
    return item


def unstage_if_changed(old: Doc, fresh: Doc) -> bool:
    """True when the station now serves a different file than the one staged for ``old``
    (another size or checksum): the staged copy is stale and the asset must be re-staged."""
    for field in ("file:size", "file:checksum"):
        if fresh.get(field) is not None and fresh.get(field) != old.get(field):
            return True
    return False
