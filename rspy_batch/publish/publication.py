"""``publish_catalog``: one call that publishes a working catalog, from URLs and settings.

This is where publishing meets the outside world: the stores, reading asset files for
copies (fsspec), signing URLs (boto3), the private strings the leak guard looks for, the
STAC Browser upload and the bucket's CORS rule. The engine is :mod:`rspy_batch.publish.run`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from rspy_batch.catalog.storage import LocalStore, S3Store, Store, open_store
from rspy_batch.errors import ConfigError
from rspy_batch.publish import bucket
from rspy_batch.publish.config import PublishConfig, normalise_public_url
from rspy_batch.publish.guard import Needle, private_needles
from rspy_batch.publish.run import (
    CollectionResult,
    Progress,
    Publication,
    Target,
    plan_targets,
    publish,
)
from rspy_batch.redact import register_secret
from rspy_batch.s3 import s3_client, split_location
from rspy_batch.stations.config import register_secrets_file, station_urls

log = logging.getLogger(__name__)

LOCAL_PUBLIC_URL = "http://127.0.0.1:8000/"


@dataclass
class PublishOutcome:
    dest: str
    public_url: str
    root_url: str
    targets: list[Target]
    results: list[CollectionResult]
    browser_url: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.record.status == "complete" for r in self.results)


def default_public_url(dest: Store) -> str:
    """Where a destination is read over HTTP when the config does not say: the local
    server's default for a directory; path-style under ``AWS_ENDPOINT_URL`` or the AWS
    virtual-hosted URL for a bucket."""
    if not isinstance(dest, S3Store):
        return LOCAL_PUBLIC_URL
    prefix = f"{dest.prefix}/" if dest.prefix else ""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return f"{endpoint.rstrip('/')}/{dest.bucket}/{prefix}"
    return f"https://{dest.bucket}.s3.amazonaws.com/{prefix}"


def publish_catalog(catalog: str, to: str, *, config: PublishConfig | None = None,
                    public_url: str | None = None, staging: str | None = None,
                    stations: str | None = None, collections: list[str] | None = None,
                    start: datetime | None = None, stop: datetime | None = None,
                    browser: bool | None = None, progress: Progress | None = None
                    ) -> PublishOutcome:
    """Publish the working catalog at ``catalog`` into ``to`` (a directory or ``s3://``).

    ``staging`` and ``stations`` (the stations file) name what must never appear in public
    files besides secrets; ``browser`` (default: the config's) uploads STAC Browser beside
    the catalog with ``catalogUrl`` set to the public root.
    """
    pub = make_publication(catalog, to, config=config, public_url=public_url,
                           staging=staging, stations=stations)
    config, dest = pub.config, pub.dest
    targets = plan_targets(pub.source, config, collections)
    results = publish(pub, targets, start=start, stop=stop, progress=progress)
    url = pub.public_url
    outcome = PublishOutcome(dest.url, url, url + "catalog.json", targets, results)
    if browser if browser is not None else config.browser:
        from rspy_batch.browser.build import install_browser

        install_browser(dest, catalog_url=outcome.root_url, title=config.title)
        outcome.browser_url = url + "browser/"
    if isinstance(dest, S3Store):
        bucket.ensure_cors(dest, config.cors)
    return outcome


def make_publication(catalog: str, to: str, *, config: PublishConfig | None = None,
                     public_url: str | None = None, staging: str | None = None,
                     stations: str | None = None) -> Publication:
    """The stores, URLs and guards of a publish from ``catalog`` into ``to``."""
    config = config or PublishConfig()
    # Every secret this machine holds is a needle, whether or not this run loads it.
    register_secrets_file()
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        register_secret(os.environ.get(name))
    source, dest = open_store(catalog), open_store(to)
    if source.url.rstrip("/") == dest.url.rstrip("/"):
        raise ConfigError("publish --to must differ from the working catalog")
    url = normalise_public_url(public_url or config.public_url or default_public_url(dest))
    return Publication(
        source=source, dest=dest, public_url=url, config=config,
        needles=needles_for(source, dest, config, staging,
                            station_urls(stations) if stations else []),
        presigner=presign, copier=read_tree)


def needles_for(source: Store, dest: Store, config: PublishConfig, staging: str | None,
                station_urls: list[str]) -> list[Needle]:
    private = [_location(source)] + ([_location(open_store(staging))] if staging else [])
    public = [dest.url] + [r.prefix for r in config.assets if not r.copy]
    needles = private_needles(station_urls=station_urls, private_locations=private,
                              public_locations=public)
    # The OData path every station interface shares: a station href in any disguise.
    return [*needles, Needle("/odata/v1/", "station URL")]


def _location(store: Store) -> str:
    return str(store.root) if isinstance(store, LocalStore) else store.url


def presign(url: str, seconds: int) -> str:
    """A presigned GET URL for the object ``s3://bucket/key`` (objects only: a Zarr
    directory has no object to sign; publish those with a ``url`` rule)."""
    parts = urlsplit(url)
    return _client().generate_presigned_url(
        "get_object", Params={"Bucket": parts.netloc, "Key": parts.path.lstrip("/")},
        ExpiresIn=seconds)


@functools.cache
def _client() -> Any:
    return s3_client(signature_version="s3v4")


def read_tree(url: str) -> Iterator[tuple[str, bytes]]:
    """The bytes of a file (path ``""``), or of every file below a directory (relative
    paths), at a ``file://`` or ``s3://`` URL."""
    import fsspec

    kind, location = split_location(url)
    if kind == "local" and not urlsplit(url).scheme:
        raise ConfigError(f"not a URL: {url!r}")
    fs, path = fsspec.core.url_to_fs(location if kind == "s3" else url)
    if not fs.isdir(path):
        yield "", fs.cat_file(path)
        return
    base = path.rstrip("/") + "/"
    for found in sorted(fs.find(path)):
        yield found[len(base):], fs.cat_file(found)
