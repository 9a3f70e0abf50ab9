"""What to publish, for whom, and how readers reach the data: the publish configuration.

A YAML file (``--config``, ``$RSPY_PUBLISH_CONFIG``), every key optional::

    public_url: https://bucket.s3.eu-central-1.amazonaws.com/catalog/  # what STAC Browser is given
    title: Copernicus products
    default_owner: operations
    publish_processed: true          # every processing output collection is published
    collections:                     # glob -> settings; first match wins. Station collections
      "prip-*": {owner: esa}         # are published only when a rule matches them;
      "*-s2-l1c": {owner: s2-team, public: false}   # processed ones take owner/public from here
    owners:
      s2-team: {principal: "arn:aws:iam::111122223333:role/s2-team-read"}
    assets:                          # how asset files become URLs a browser loads; first match
      - {from: "s3://staging-bucket/", url: "https://staging-bucket.s3.amazonaws.com/"}
      - {from: "s3://private-staging/", presign: 604800}     # seconds (SigV4 max: 7 days)
      - {from: "/data/staging", copy: true}                  # copied beside the item
    thumbnails: copy                 # copy thumbnails beside their item (default) | rules
    stac_browser: {defaultThumbnailSize: [200, 200]}        # merged into the root's hints
    browser: true                    # upload STAC Browser under browser/ with catalogUrl set
    cors: auto                       # S3 destination: set a CORS rule when the bucket has none

An asset no rule matches is withheld: the published item lists it nowhere, and the run
record counts it. That default keeps private buckets and local paths out of public files.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from rspy_batch.catalog.layout import unsafe_id_reason
from rspy_batch.errors import ConfigError

DEFAULT_OWNER = "rspy-batch"
RESERVED_NAMES = frozenset({"private", "browser", "index", "_rspy", "catalog.json"})
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

DEFAULT_BROWSER_HINTS: dict[str, Any] = {
    "defaultThumbnailSize": [256, 256],
    "showThumbnailsAsAssets": False,
    "crossOriginMedia": "anonymous",
}


@dataclass(frozen=True)
class CollectionRule:
    pattern: str
    owner: str | None = None
    public: bool = True


@dataclass(frozen=True)
class AssetRule:
    """``from`` is a URL prefix (``s3://…``, ``file://…``; a path is turned into one)."""

    prefix: str
    url: str | None = None
    presign: int | None = None
    copy: bool = False

    @property
    def mode(self) -> str:
        return "copy" if self.copy else "presign" if self.presign else "url"


@dataclass(frozen=True)
class Placement:
    """Where one collection goes: its owner and whether the public root links it."""

    owner: str
    public: bool


@dataclass(frozen=True)
class PublishConfig:
    public_url: str | None = None
    title: str = "rspy-batch catalog"
    description: str = "Copernicus station and processed products"
    default_owner: str = DEFAULT_OWNER
    publish_processed: bool = True
    collections: tuple[CollectionRule, ...] = ()
    owners: dict[str, dict[str, Any]] = field(default_factory=dict)
    assets: tuple[AssetRule, ...] = ()
    thumbnails: str = "copy"
    stac_browser: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_BROWSER_HINTS))
    browser: bool = False
    cors: str = "auto"

    def placement(self, collection_id: str, *, processed: bool) -> Placement | None:
        """Owner and visibility of a collection, or None when it is not published."""
        for rule in self.collections:
            if fnmatch.fnmatchcase(collection_id, rule.pattern):
                return Placement(rule.owner or self.default_owner, rule.public)
        if processed and self.publish_processed:
            return Placement(self.default_owner, True)
        return None

    def principal(self, owner: str) -> str | None:
        return (self.owners.get(owner) or {}).get("principal")


def load_config(path: str | os.PathLike[str] | None) -> PublishConfig:
    if not path:
        return PublishConfig()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read publish config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"publish config {path} is not valid YAML: {exc}") from None
    return parse_config(data, source=str(path))


_KEYS = {"public_url", "title", "description", "default_owner", "publish_processed",
         "collections", "owners", "assets", "thumbnails", "stac_browser", "browser", "cors"}


def parse_config(data: Any, source: str = "<publish config>") -> PublishConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the publish config is a YAML mapping")
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown keys {', '.join(sorted(unknown))}")
    default_owner = _owner_name(data.get("default_owner", DEFAULT_OWNER), source)
    rules = []
    for pattern, raw in (data.get("collections") or {}).items():
        raw = raw or {}
        if not isinstance(raw, dict) or set(raw) - {"owner", "public"}:
            raise ConfigError(f"{source}: collections.{pattern}: expected {{owner, public}}")
        owner = _owner_name(raw["owner"], source) if raw.get("owner") else None
        rules.append(CollectionRule(str(pattern), owner, bool(raw.get("public", True))))
    owners = data.get("owners") or {}
    if not isinstance(owners, dict):
        raise ConfigError(f"{source}: owners is a mapping of owner -> {{principal}}")
    for name in owners:
        _owner_name(name, source)
    hints = dict(DEFAULT_BROWSER_HINTS)
    hints.update(data.get("stac_browser") or {})
    thumbnails = data.get("thumbnails", "copy")
    if thumbnails not in ("copy", "rules"):
        raise ConfigError(f"{source}: thumbnails is 'copy' or 'rules'")
    cors = str(data.get("cors", "auto")).lower()
    if cors not in ("auto", "true", "false"):
        raise ConfigError(f"{source}: cors is auto, true or false")
    public_url = data.get("public_url")
    return PublishConfig(
        public_url=normalise_public_url(public_url) if public_url else None,
        title=str(data.get("title", PublishConfig.title)),
        description=str(data.get("description", PublishConfig.description)),
        default_owner=default_owner,
        publish_processed=bool(data.get("publish_processed", True)),
        collections=tuple(rules),
        owners={str(k): dict(v or {}) for k, v in owners.items()},
        assets=tuple(_asset_rule(r, source) for r in data.get("assets") or []),
        thumbnails=thumbnails,
        stac_browser=hints,
        browser=bool(data.get("browser", False)),
        cors=cors,
    )


def normalise_public_url(url: str) -> str:
    """The URL the destination is served at, always ending with ``/``."""
    if "@" in urlsplit(url).netloc:
        # Every published document and the browser's config.js would carry it.
        raise ConfigError("a public URL must not hold credentials (user:password@)")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"public URL must be http(s)://…, got {url!r}")
    return url if url.endswith("/") else url + "/"


def url_prefix(location: str) -> str:
    """A rule's ``from`` as a URL prefix: paths become ``file://`` URLs ending with ``/``."""
    if "://" not in location:
        location = Path(location).expanduser().resolve().as_uri()
    return location if location.endswith("/") else location + "/"


def _asset_rule(raw: Any, source: str) -> AssetRule:
    if not isinstance(raw, dict) or "from" not in raw:
        raise ConfigError(f"{source}: each assets entry needs 'from'")
    modes = [k for k in ("url", "presign", "copy") if raw.get(k)]
    if len(modes) != 1 or set(raw) - {"from", "url", "presign", "copy"}:
        raise ConfigError(f"{source}: assets entry {raw['from']!r} needs exactly one of "
                          f"url, presign, copy")
    prefix = url_prefix(str(raw["from"]))
    presign = raw.get("presign")
    if presign is not None:
        if not prefix.startswith("s3://"):
            raise ConfigError(f"{source}: presign works for s3:// locations only")
        if not isinstance(presign, int) or not 0 < presign <= MAX_PRESIGN_SECONDS:
            raise ConfigError(f"{source}: presign is seconds, 1..{MAX_PRESIGN_SECONDS}")
    url = raw.get("url")
    if url is not None:
        url = normalise_public_url(str(url))
    return AssetRule(prefix, url, presign, bool(raw.get("copy")))


def _owner_name(name: Any, source: str) -> str:
    """Owners become key prefixes, so they follow the catalog's id rules."""
    reason = unsafe_id_reason(str(name))
    if reason or str(name) in RESERVED_NAMES:
        raise ConfigError(f"{source}: owner {name!r}: {reason or 'reserved name'}")
    return str(name)
