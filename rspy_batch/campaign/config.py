"""Campaign files (YAML): which collections, over which range, through which processors.

A campaign is what an operator re-runs from cron until it is done, and runs again when a
processor changes::

    name: s2-2026q1                      # names the campaign's leases and logs
    start: 2026-01-01                    # inclusive, UTC
    stop: 2026-04-01                     # exclusive
    catalog: s3://ops/catalog            # default $RSPY_CATALOG or ./catalog
    staging: s3://ops/staging            # default $RSPY_STAGING or ./staging
    stations: /etc/rspy/stations.yaml    # default $RSPY_STATIONS or ./stations.yaml
    collections: [cadip-s1a-mti]         # ingested and staged (processing inputs are too)
    processing:
      - processor: s2-l1c
        version: "1.0.0"                 # must be the installed processor's version
        input: prip-s2b-msil1c
        output: prip-s2b-msil1c-l1c      # series id; the collection is <output>-v<version>
        params: {percentile: 98}
        zarr_format: 2
    publish:                             # optional
      to: s3://public/catalog
      public_url: https://public.example.eu/catalog/
      config: publish.yaml
    options:
      workers: 2                         # Luigi worker processes of this run
      scheduler_url: http://luigid:8082  # a central luigid (default: in-process scheduler)
      dask_scheduler: tcp://dask:8786    # default: a LocalCluster per process window
      transfers: 4
      order_timeout: 600
      lease_ttl: 300
      if_busy: wait                      # or skip: exit "already running" if another run
                                         # holds one of the campaign's windows
      idle_timeout: 120                  # with luigid: a worker with nothing to run leaves

Relative paths are taken from the campaign file's directory, so cron (started in $HOME)
and an operator's shell agree. Every error names the file and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from rspy_batch.catalog.layout import unsafe_id_reason
from rspy_batch.catalog.versions import versioned_id
from rspy_batch.errors import ConfigError
from rspy_batch.processing.registry import get_processor
from rspy_batch.redact import register_secret
from rspy_batch.settings import (
    default_catalog,
    default_publish_config,
    default_staging,
    default_stations,
    default_templates,
)
from rspy_batch.templates import CollectionTemplate, load_templates
from rspy_batch.windows import parse_when

BUSY = ("wait", "skip")


@dataclass(frozen=True)
class Processing:
    """One processor run over one input collection, into one versioned output collection."""

    processor: str
    version: str
    input: str
    series: str                      # the output series id, without the version
    params: dict[str, Any] = field(default_factory=dict)
    zarr_format: int = 2

    @property
    def output(self) -> str:
        """The output collection this version writes (older versions are kept)."""
        return versioned_id(self.series, self.version)


@dataclass(frozen=True)
class PublishSpec:
    to: str
    public_url: str | None = None
    config: str | None = None


@dataclass(frozen=True)
class Options:
    workers: int = 1
    scheduler_url: str | None = None
    dask_scheduler: str | None = None
    transfers: int = 4
    order_timeout: float = 600.0
    lease_ttl: float = 300.0
    if_busy: str = "wait"
    idle_timeout: float = 120.0     # with luigid: leave after this long with nothing to run


@dataclass(frozen=True)
class Campaign:
    name: str
    start: datetime
    stop: datetime
    catalog: str
    staging: str
    stations: str
    templates: str | None
    collections: tuple[str, ...]     # every station collection: listed ones and inputs
    processing: tuple[Processing, ...] = ()
    publish: PublishSpec | None = None
    options: Options = Options()
    source: str = "<campaign>"

    def template(self, collection: str) -> CollectionTemplate:
        return load_templates(self.templates)[collection]


TOP = {"name", "start", "stop", "catalog", "staging", "stations", "templates", "collections",
       "processing", "publish", "options", "description"}
PROCESSING = {"processor", "version", "input", "output", "params", "zarr_format"}
PUBLISH = {"to", "public_url", "config"}
OPTIONS = {"workers", "scheduler_url", "dask_scheduler", "transfers", "order_timeout",
           "lease_ttl", "if_busy", "idle_timeout"}


def load_campaign(path: str | os.PathLike[str], **overrides: Any) -> Campaign:
    """Read and check a campaign file. ``overrides`` replace ``options`` fields (the
    command line's ``--workers``, ``--scheduler-url``, ... win over the file)."""
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read campaign file {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    return parse_campaign(data, base=file.resolve().parent, source=str(file),
                          overrides=overrides)


def parse_campaign(data: Any, *, base: Path, source: str = "<campaign>",
                   overrides: dict[str, Any] | None = None) -> Campaign:
    """The checked campaign of a parsed YAML document (relative paths against ``base``)."""
    where = source
    doc = _mapping(data, where, TOP)
    name = _required(doc, "name", where)
    if not isinstance(name, str) or (reason := unsafe_id_reason(name)):
        raise ConfigError(f"{where}: name {name!r} is not usable: {reason or 'not a string'}")
    start = _when(doc, "start", where)
    stop = _when(doc, "stop", where)
    if stop <= start:
        raise ConfigError(f"{where}: stop {stop.isoformat()} is not after start "
                          f"{start.isoformat()}")
    templates = _path(doc.get("templates"), base) or default_templates()
    known = load_templates(templates)
    listed = _list_of_str(doc.get("collections", []), f"{where}: collections")
    processing = tuple(_processing(p, f"{where}: processing[{i}]", known)
                       for i, p in enumerate(_list(doc.get("processing", []),
                                                   f"{where}: processing")))
    for cid in listed:
        if cid not in known:
            raise ConfigError(f"{where}: collections: no template for {cid!r} (known: "
                              f"{', '.join(sorted(known))})")
    outputs = [p.output for p in processing]
    if len(set(outputs)) != len(outputs):
        raise ConfigError(f"{where}: processing: two entries write the same output collection")
    if not listed and not processing:
        raise ConfigError(f"{where}: names no collections and no processing")
    collections = tuple(dict.fromkeys([*listed, *(p.input for p in processing)]))
    publish = None
    if doc.get("publish") is not None:
        pub = _mapping(doc["publish"], f"{where}: publish", PUBLISH)
        publish = PublishSpec(to=_location(_required(pub, "to", f"{where}: publish"), base),
                              public_url=pub.get("public_url"),
                              config=_path(pub.get("config"), base) or default_publish_config())
    options = _options(doc.get("options") or {}, f"{where}: options", overrides or {})
    return Campaign(
        name=name, start=start, stop=stop,
        catalog=_location(doc.get("catalog"), base) or default_catalog(),
        staging=_location(doc.get("staging"), base) or default_staging(),
        stations=_path(doc.get("stations"), base) or default_stations(),
        templates=templates, collections=collections, processing=processing,
        publish=publish, options=options, source=source)


def _processing(data: Any, where: str, known: dict[str, CollectionTemplate]) -> Processing:
    doc = _mapping(data, where, PROCESSING)
    name = _required(doc, "processor", where)
    try:
        processor = get_processor(str(name))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    version = str(doc.get("version", processor.version))
    if version != processor.version:
        # Running another version than the one installed would stamp products with a
        # version that did not make them.
        raise ConfigError(f"{where}: asks {name} {version}, but {processor.version} is "
                          f"installed (install {name} {version}, or change the campaign)")
    source = str(_required(doc, "input", where))
    if source not in known:
        raise ConfigError(f"{where}: input: no template for {source!r}")
    series = str(doc.get("output") or f"{source}-{name}")
    output = versioned_id(series, version)
    if reason := unsafe_id_reason(output):
        raise ConfigError(f"{where}: output collection {output!r}: {reason}")
    if output in known:
        raise ConfigError(f"{where}: output collection {output!r} is a station collection")
    params = doc.get("params") or {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: params must be a mapping")
    unknown = set(params) - set(processor.parameters)
    if unknown:
        raise ConfigError(f"{where}: {name} has no parameter(s) {', '.join(sorted(unknown))} "
                          f"(it has: {', '.join(sorted(processor.parameters)) or 'none'})")
    zarr_format = doc.get("zarr_format", 2)
    if zarr_format not in (2, 3):
        raise ConfigError(f"{where}: zarr_format must be 2 or 3")
    return Processing(processor=str(name), version=version, input=source, series=series,
                      params=dict(params), zarr_format=int(zarr_format))


def _options(data: Any, where: str, overrides: dict[str, Any]) -> Options:
    doc = dict(_mapping(data, where, OPTIONS))
    doc.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(doc) - OPTIONS
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        options = Options(
            workers=int(doc.get("workers", 1)),
            scheduler_url=doc.get("scheduler_url"),
            dask_scheduler=doc.get("dask_scheduler"),
            transfers=int(doc.get("transfers", 4)),
            order_timeout=float(doc.get("order_timeout", 600.0)),
            lease_ttl=float(doc.get("lease_ttl", 300.0)),
            if_busy=str(doc.get("if_busy", "wait")),
            idle_timeout=float(doc.get("idle_timeout", 120.0)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if options.workers < 1 or options.transfers < 1:
        raise ConfigError(f"{where}: workers and transfers must be at least 1")
    if options.lease_ttl < 5:
        raise ConfigError(f"{where}: lease_ttl must be at least 5 seconds")
    if options.if_busy not in BUSY:
        raise ConfigError(f"{where}: if_busy must be one of {', '.join(BUSY)}")
    if options.scheduler_url:
        # A luigid behind basic auth: the password is a secret wherever the URL is shown.
        register_secret(urlsplit(str(options.scheduler_url)).password)
    return options


def _mapping(data: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = set(data) - allowed
    if unknown:
        # A typo ("procesing:") must not silently drop half a campaign.
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))} "
                          f"(allowed: {', '.join(sorted(allowed))})")
    return data


def _required(doc: dict[str, Any], key: str, where: str) -> Any:
    if doc.get(key) in (None, ""):
        raise ConfigError(f"{where}: {key} is required")
    return doc[key]


def _when(doc: dict[str, Any], key: str, where: str) -> datetime:
    try:
        return parse_when(_required(doc, key, where))
    except ConfigError as exc:
        raise ConfigError(f"{where}: {key}: {exc}") from None


def _list(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a list")
    return data


def _list_of_str(data: Any, where: str) -> list[str]:
    items = _list(data, where)
    if not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where}: expected a list of collection ids")
    return items


def _path(value: Any, base: Path) -> str | None:
    if value in (None, ""):
        return None
    path = Path(os.path.expanduser(str(value)))
    return str(path if path.is_absolute() else base / path)


def _location(value: Any, base: Path) -> str | None:
    """A store location: an URL as given, a directory against ``base``."""
    if value in (None, ""):
        return None
    text = str(value)
    return text if "://" in text else _path(text, base)
