"""How each asset of a published item is reached (pure): a public URL, a presigned URL, a
copy beside the item, or not at all.

Working-catalog assets point at the staging store (``s3://…`` or ``file://…``) and carry
the station download as an alternate. None of those is loadable by a browser or meant for
the public, so every href goes through the configured rules; an href no rule matches is
withheld (dropped, and counted) rather than published as it is.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from rspy_batch.publish.config import AssetRule

Presigner = Callable[[str, int], str]
"""``(s3 URL, seconds) -> https URL``; side effects stay with the caller."""

ALTERNATE_EXT = "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json"


@dataclass(frozen=True)
class Copy:
    source: str  # URL of a file or directory
    key: str  # destination key (a directory's files go below it)


@dataclass
class AssetPlan:
    assets: dict[str, Any]
    copies: list[Copy] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)  # asset keys, or "<key>#<alternate>"
    presigned: bool = False


def plan_assets(assets: dict[str, Any], *, item_key: str, rules: Iterable[AssetRule],
                copy_thumbnails: bool, presigner: Presigner) -> AssetPlan:
    """The published assets of one item, and the copies they need.

    ``item_key`` is the published item's key: copies go into its folder and their hrefs
    are relative to it (``./<name>``). An asset inside another copied asset (a Zarr
    variable inside its product) keeps its path below that copy.
    """
    rules = list(rules)
    item_dir = posixpath.dirname(item_key)
    plan = AssetPlan(assets={})
    copied: dict[str, str] = {}  # source href -> relative href of its copy
    # Shortest hrefs first, so a product directory is planned before its variables.
    for name, asset in sorted(assets.items(), key=lambda kv: (len(kv[1].get("href", "")),
                                                              kv[0])):
        asset = _without_private_fields(asset)
        href = asset.get("href", "")
        roles = asset.get("roles") or []
        rule = _match(href, rules)
        inside = _inside_copy(href, copied)
        if inside is not None:
            asset["href"] = inside
        elif copy_thumbnails and "thumbnail" in roles and _copyable(href):
            asset["href"] = _plan_copy(href, item_dir, plan, copied)
        elif rule is None or (rule.copy and not _copyable(href)):
            plan.withheld.append(name)
            continue
        elif rule.copy:
            asset["href"] = _plan_copy(href, item_dir, plan, copied)
        else:
            asset["href"] = _public_href(href, rule, presigner, plan)
        alternates = {}
        for alt_name, alt in (asset.get("alternate") or {}).items():
            alt_rule = _match(alt.get("href", ""), rules)
            if alt_rule is None or alt_rule.copy:
                plan.withheld.append(f"{name}#{alt_name}")
                continue
            alternates[alt_name] = {**alt, "href": _public_href(alt["href"], alt_rule,
                                                                presigner, plan)}
        if alternates:
            asset["alternate"] = alternates
        else:
            asset.pop("alternate", None)
        plan.assets[name] = asset
    plan.assets = dict(sorted(plan.assets.items()))
    return plan


def uses_alternates(assets: dict[str, Any]) -> bool:
    return any("alternate" in a for a in assets.values())


def _without_private_fields(asset: dict[str, Any]) -> dict[str, Any]:
    """Our own bookkeeping (``rspy:*``: when it was staged) is not for readers."""
    return {k: v for k, v in asset.items() if not k.startswith("rspy:")}


def _match(href: str, rules: list[AssetRule]) -> AssetRule | None:
    for rule in rules:
        if href.startswith(rule.prefix) or href + "/" == rule.prefix:
            return rule
    return None


def _copyable(href: str) -> bool:
    return urlsplit(href).scheme in ("s3", "file")


def _inside_copy(href: str, copied: dict[str, str]) -> str | None:
    for source, relative in copied.items():
        if href.startswith(source.rstrip("/") + "/"):
            return relative + "/" + href[len(source.rstrip("/")) + 1:]
    return None


def _plan_copy(href: str, item_dir: str, plan: AssetPlan, copied: dict[str, str]) -> str:
    name = unquote(posixpath.basename(urlsplit(href).path.rstrip("/")))
    # The file name comes from our own staging key, but keep the copy inside the item
    # folder whatever it is.
    if not name or name in (".", "..") or "/" in name:
        raise ValueError(f"cannot copy {href!r}: no usable file name")
    plan.copies.append(Copy(href, f"{item_dir}/{name}"))
    relative = "./" + quote(name)
    copied[href] = relative
    return relative


def _public_href(href: str, rule: AssetRule, presigner: Presigner, plan: AssetPlan) -> str:
    if rule.presign:
        plan.presigned = True
        return presigner(href, rule.presign)
    assert rule.url is not None
    rest = href[len(rule.prefix):] if href.startswith(rule.prefix) else ""
    return rule.url + quote(unquote(rest), safe="/")
